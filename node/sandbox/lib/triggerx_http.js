// The web, for a script whose job allows it: GET through the keeper's proxy (the sandbox's one
// way out, a unix socket). The keeper records every answer, and attesters replay them.
//
//     const web = require("triggerx_http");
//     const price = (await web.getJson("https://api.example.com/price")).usd;
"use strict";
const http = require("http");

// The status and body the proxy answers for `url`.
function get(url) {
  return new Promise((resolve, reject) => {
    const options = { socketPath: process.env.TRIGGERX_HTTP_SOCKET, path: url, headers: { host: "proxy" } };
    http
      .get(options, (response) => {
        const chunks = [];
        response.on("data", (chunk) => chunks.push(chunk));
        response.on("end", () => resolve({ status: response.statusCode, body: Buffer.concat(chunks) }));
      })
      .on("error", reject);
  });
}

// The JSON document at `url`; an error unless the answer is 200.
async function getJson(url) {
  const { status, body } = await get(url);
  if (status !== 200) throw new Error(`${url}: HTTP ${status}: ${body.toString().slice(0, 200)}`);
  return JSON.parse(body.toString());
}

module.exports = { get, getJson };
