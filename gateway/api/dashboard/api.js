// Reading the gateway's public API (the same origin that served this page).

/** An answer the API refused or could not give: `message` is the API's own reason. */
export class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

/** GET `path` with the query `params` (empty and null values left out); its JSON. */
export async function getJson(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") query.set(key, String(value));
  }
  const url = query.size ? `${path}?${query}` : path;
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" } });
  } catch (failure) {
    throw new ApiError(0, `the gateway did not answer (${failure.message})`);
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const reason = body && body.error ? body.error : `HTTP ${response.status}`;
    throw new ApiError(response.status, reason, body && body.field);
  }
  return body;
}

/** The URL of the gateway's WebSocket `path`, on this page's host. */
export function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}${path}`;
}
