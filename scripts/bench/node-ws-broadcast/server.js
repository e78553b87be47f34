// The baseline of scripts/bench-fanout: the plain way to broadcast with
// the npm package `ws`, for `bidask-loadgen fanout --target node`.
//
//   PORT=18090 node server.js        listens on 127.0.0.1 only
//
// - GET /ws upgrades to a WebSocket. The server greets with `welcome`,
//   answers `{"type":"subscribe","channels":[...]}` with `subscribed`
//   (carrying the last seq broadcast, so clients can check for gaps) and
//   `ping` with `pong`.
// - POST /publish takes one message (the load generator's BID_UPDATED-shaped
//   JSON), stamps its `ts` with the time it arrived, as bidask stamps its
//   events when it accepts them, answers 204, and then sends it to every
//   subscribed client: one Buffer, no per-client copy, the loop of ws's
//   own README. The next message is read once that loop is done (one
//   thread), so the server still takes events no faster than it
//   broadcasts them.
// - GET /healthz answers 200 once the server listens.
//
// No heartbeats, no per-client queues, no slow-consumer policy: that is
// what "plain" means here, and all of it would only cost the baseline.
'use strict';

const http = require('http');
const { WebSocketServer, WebSocket } = require('ws');

const port = Number(process.env.PORT || 18090);
const maxBody = 64 * 1024;

let lastSeq = 0;
let nextConnectionId = 1;

// The wall clock the load generator reads, in microseconds. Date.now()
// has milliseconds only (and performance.timeOrigin can be milliseconds
// off it), so the edge of one millisecond is found once and the monotonic
// clock counts on from there.
const clockBase = (() => {
  const start = Date.now();
  let wall = start;
  while (wall === start) wall = Date.now();
  return { wall: BigInt(wall) * 1000n, monotonic: process.hrtime.bigint() };
})();

/** Now, as RFC 3339 with microseconds. */
function now() {
  const micros = clockBase.wall + (process.hrtime.bigint() - clockBase.monotonic) / 1000n;
  const iso = new Date(Number(micros / 1000n)).toISOString();
  return `${iso.slice(0, 19)}.${String(micros % 1000000n).padStart(6, '0')}Z`;
}

const server = http.createServer((request, response) => {
  if (request.method === 'POST' && request.url === '/publish') {
    const chunks = [];
    let length = 0;
    request.on('data', (chunk) => {
      length += chunk.length;
      if (length > maxBody) {
        response.writeHead(413).end();
        request.destroy();
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => {
      const message = Buffer.from(
        Buffer.concat(chunks).toString('utf8').replace(/"ts":"[^"]*"/, `"ts":"${now()}"`),
      );
      const seq = /"seq":(\d+)/.exec(message.toString('latin1', 0, 200));
      if (seq) lastSeq = Number(seq[1]);
      // Answered first, as bidask answers an order once it is committed
      // and fans its event out afterwards: the publisher's round trip is
      // the acceptance, not the broadcast, for both servers.
      response.writeHead(204).end();
      broadcast(message);
    });
    return;
  }
  if (request.method === 'GET' && request.url === '/healthz') {
    response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    return;
  }
  response.writeHead(404).end();
});

const feed = new WebSocketServer({ server, path: '/ws', perMessageDeflate: false });

feed.on('connection', (socket) => {
  socket.subscribed = false;
  socket.send(JSON.stringify({
    type: 'welcome',
    connection_id: nextConnectionId++,
    user: null,
    heartbeat_interval_ms: 0,
  }));
  socket.on('message', (data, isBinary) => {
    let request;
    try {
      request = JSON.parse(data.toString());
    } catch (error) {
      socket.send(JSON.stringify({ type: 'error', code: 'invalid_json', message: 'send JSON' }));
      return;
    }
    if (request.type === 'subscribe' && Array.isArray(request.channels)) {
      socket.subscribed = true;
      for (const channel of request.channels) {
        socket.send(JSON.stringify({
          type: 'subscribed', channel, seq: lastSeq, snapshot: null, id: request.id,
        }));
      }
    } else if (request.type === 'ping') {
      socket.send(JSON.stringify({ type: 'pong', id: request.id }));
    } else {
      socket.send(JSON.stringify({ type: 'error', code: 'unknown_type', message: 'subscribe or ping' }));
    }
  });
  socket.on('error', () => {});
});

function broadcast(message) {
  for (const client of feed.clients) {
    if (client.subscribed && client.readyState === WebSocket.OPEN) {
      client.send(message, { binary: false });
    }
  }
}

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`node-ws-broadcast listening on 127.0.0.1:${port}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
