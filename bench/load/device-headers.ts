/** Extra headers of a device's WebSocket upgrade request, by device id. */
export type DeviceHeaderSource = (deviceId: string) => Record<string, string>;

/**
 * Upgrade headers from device tokens: `Authorization: Bearer <token>` for each device that has one in
 * `tokens`, and no extra header for the others (the bare peers authenticate no one).
 */
export function bearerHeaders(tokens: ReadonlyMap<string, string>): DeviceHeaderSource {
  return (deviceId) => {
    const token = tokens.get(deviceId);
    const headers: Record<string, string> = {};
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    return headers;
  };
}
