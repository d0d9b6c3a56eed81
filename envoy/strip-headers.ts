/**
 * Lua source for Envoy's Lua filter. It removes every client-sent header whose name starts with
 * `x-hsmgate-` before ext_authz runs, so that only headers set by the authorization service
 * reach the backend under that prefix.
 */
export const stripHsmgateHeadersLua = `
function envoy_on_request(request_handle)
  local headers = request_handle:headers()
  local names = {}
  for name, _ in pairs(headers) do
    if string.sub(string.lower(name), 1, 10) == "x-hsmgate-" then
      table.insert(names, name)
    end
  end
  for _, name in ipairs(names) do
    headers:remove(name)
  end
end
`
