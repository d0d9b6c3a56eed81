/**
 * Returns a certificate serial in the form the store keys it by: lowercase hex without
 * separators and without leading zero bytes, as `openssl x509 -serial` prints it but lowercase.
 * Node's X509Certificate prints the same digits in uppercase; @peculiar/x509 keeps the DER
 * INTEGER's leading zero byte when the top bit is set.
 */
export function normalizeSerial(serial: string): string {
  let hex = serial.replace(/[:\s]/g, '').toLowerCase()
  if (hex.length % 2 === 1) hex = `0${hex}`
  while (hex.length > 2 && hex.startsWith('00')) hex = hex.slice(2)
  return hex
}
