// The product page in headless Chromium, driven by Playwright, against a
// running server: live prices as another client trades over REST, signing
// in, placing and cancelling from the page, Sell Now and Buy Now, the sold
// and bought toasts, and resuming after the connection drops.
//
//   BIDASK_URL=http://127.0.0.1:8080 BIDASK_ADMIN_USERNAME=… BIDASK_ADMIN_PASSWORD=… node page.mjs
//
// BIDASK_SCREENSHOT=path saves the product page; BIDASK_CHROMIUM overrides
// /usr/bin/chromium. Exits non-zero on the first failed step. Delays are
// printed, not asserted: speed is for the benchmarks.
import { chromium } from 'playwright-core';

const base = process.env.BIDASK_URL;
if (!base) throw new Error('set BIDASK_URL');
const WAIT = 15_000;
const run = Date.now().toString(36);

async function rest(method, path, token, body) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(`${base}/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const payload = await response.json();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(payload)}`);
  return payload;
}

async function register(name) {
  const username = `${name}-${run}`;
  const password = `password-of-${username}`;
  const reply = await rest('POST', '/auth/register', null, { username, password });
  return { username, password, token: reply.token, id: reply.user.id };
}

function step(name) {
  console.log(`• ${name}`);
}

/** Waits until `selector`'s text is `text`; returns how long it took. */
async function textOf(page, selector, text) {
  const started = Date.now();
  await page.waitForFunction(
    ([selector, text]) => document.querySelector(selector)?.textContent === text,
    [selector, text],
    { timeout: WAIT },
  );
  return Date.now() - started;
}

/** Signs `user` in through the page's own form, and waits until it says so. */
async function signIn(page, user) {
  await page.fill('[data-testid=sign-in] input[name=username]', user.username);
  await page.fill('[data-testid=sign-in] input[name=password]', user.password);
  await page.click('[data-testid=sign-in] button[name=login]');
  await textOf(page, '[data-testid=signed-in]', user.username);
}

async function toast(page, text) {
  await page.locator('[data-testid=toast]', { hasText: text }).first().waitFor({ timeout: WAIT });
}

const admin = await rest('POST', '/auth/login', null, {
  username: process.env.BIDASK_ADMIN_USERNAME,
  password: process.env.BIDASK_ADMIN_PASSWORD,
});
const product = await rest('POST', '/products', admin.token, {
  sku: `AJ1-CHI-${run}`,
  name: 'Air Jordan 1 Chicago',
  brand: 'Jordan',
  sizes: ['9', '10', '11'],
});
const seller = await register('seller');
const buyer = await register('buyer');
const bidder = await register('bidder');
await rest('POST', '/asks', bidder.token, { product_id: product.id, size: '11', price: '260.00' });

const browser = await chromium.launch({
  executablePath: process.env.BIDASK_CHROMIUM || '/usr/bin/chromium',
  // This machine's network is closed: without these Chromium keeps trying
  // to reach Google's services.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const failures = [];
// Set while the test itself causes a 429 or a 401.
let faking429 = false;
let faking401 = false;
const watch = (page, who) => {
  page.on('pageerror', (error) => failures.push(`${who}: ${error.message}`));
  page.on('console', (message) => {
    const expected = (faking429 && message.text().includes('429')) || (faking401 && message.text().includes('401'));
    if (message.type() === 'error' && !expected) {
      failures.push(`${who} console: ${message.text()}`);
    }
  });
  page.on('response', (response) => {
    const expected = (faking429 && response.status() === 429) || (faking401 && response.status() === 401);
    if (response.status() >= 400 && !expected) {
      failures.push(`${who}: ${response.status()} from ${response.url()}`);
    }
  });
};

try {
  step('the catalog lists the product');
  const watcher = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  watch(watcher, 'watcher');
  await watcher.goto(base);
  await watcher.getByText('Air Jordan 1 Chicago').first().waitFor({ timeout: WAIT });
  await watcher.getByText('Air Jordan 1 Chicago').first().click();
  await watcher.waitForURL(`**/products/${product.id}`);
  await textOf(watcher, '[data-testid=live]', 'Live');
  await textOf(watcher, '[data-testid=lowest-ask-11]', '$260.00');

  step('another client bids over REST: the page shows the new highest bid');
  await rest('POST', '/bids', bidder.token, { product_id: product.id, size: '10', price: '200.00' });
  const bidDelay = await textOf(watcher, '[data-testid=highest-bid-10]', '$200.00');
  console.log(`  shown ${bidDelay} ms after the 201`);

  step('a click that spans a live update still lands, and what is typed stays put');
  // A busy market updates the page many times a second: the controls
  // under the user's finger must be the same elements before and after.
  const controls = await watcher.evaluate(() => {
    window.kept = [
      document.querySelector('[data-testid=price]'),
      document.querySelector('[data-testid=trade] button[name=bid]'),
      document.querySelector('[data-testid=buy-now]'),
      document.querySelector('[data-testid=markets] tr.size'),
    ];
    return window.kept.every(Boolean);
  });
  if (!controls) throw new Error('the trade controls are missing');
  await watcher.fill('[data-testid=price]', '123.45');
  const row = await watcher.locator('[data-testid=markets] tr.size', { hasText: '9' }).first().boundingBox();
  await watcher.mouse.move(row.x + row.width / 2, row.y + row.height / 2);
  await watcher.mouse.down();
  const passing = await rest('POST', '/bids', bidder.token, { product_id: product.id, size: '10', price: '201.00' });
  await textOf(watcher, '[data-testid=highest-bid-10]', '$201.00');
  await watcher.mouse.up();
  await watcher.getByText('Book · size 9').waitFor({ timeout: WAIT });
  const survived = await watcher.evaluate(() => ({
    connected: window.kept.map((element) => element.isConnected),
    typed: document.querySelector('[data-testid=price]').value,
  }));
  if (!survived.connected.every(Boolean) || survived.typed !== '123.45') {
    throw new Error(`a live update replaced the controls: ${JSON.stringify(survived)}`);
  }
  await watcher.fill('[data-testid=price]', '');
  await rest('DELETE', `/orders/${passing.order.id}`, bidder.token);
  await textOf(watcher, '[data-testid=highest-bid-10]', '$200.00');
  await watcher.locator('[data-testid=markets] tr.size', { hasText: '10' }).first().click();
  await watcher.getByText('Book · size 10').waitFor({ timeout: WAIT });

  step('a size can be chosen from the keyboard, and the chosen one says so');
  await watcher.focus('[data-testid=size-9]');
  await watcher.keyboard.press('Enter');
  await watcher.getByText('Book · size 9').waitFor({ timeout: WAIT });
  const pressed = await watcher.evaluate(() => ({
    nine: document.querySelector('[data-testid=size-9]').getAttribute('aria-pressed'),
    ten: document.querySelector('[data-testid=size-10]').getAttribute('aria-pressed'),
  }));
  if (pressed.nine !== 'true' || pressed.ten !== 'false') throw new Error(`aria-pressed ${JSON.stringify(pressed)}`);
  await watcher.getByRole('textbox', { name: 'Price' }).waitFor({ timeout: WAIT });
  await watcher.getByRole('textbox', { name: 'Username' }).waitFor({ timeout: WAIT });
  await watcher.getByRole('button', { name: 'Size 10' }).click();
  await watcher.getByText('Book · size 10').waitFor({ timeout: WAIT });

  step('a seller signs in on the page and places an ask from it');
  const sellerContext = await browser.newContext();
  const sellerPage = await sellerContext.newPage();
  watch(sellerPage, 'seller');
  await sellerPage.goto(`${base}/products/${product.id}`);
  await textOf(sellerPage, '[data-testid=live]', 'Live');
  // A refused try's error goes with the next try, also one the browser's
  // own checks stop before it is sent (an empty password).
  faking401 = true;
  await sellerPage.fill('[data-testid=sign-in] input[name=username]', seller.username);
  await sellerPage.fill('[data-testid=sign-in] input[name=password]', 'not-the-password');
  await sellerPage.click('[data-testid=sign-in] button[name=login]');
  await sellerPage.locator('[data-testid=sign-in-error]:not(:empty)').waitFor({ timeout: WAIT });
  faking401 = false;
  await sellerPage.fill('[data-testid=sign-in] input[name=password]', '');
  await sellerPage.click('[data-testid=sign-in] button[name=login]');
  await textOf(sellerPage, '[data-testid=sign-in-error]', '');
  await signIn(sellerPage, seller);
  await textOf(sellerPage, '[data-testid=live]', 'Live');
  await sellerPage.fill('[data-testid=price]', '205.00');
  await sellerPage.click('[data-testid=trade] button[name=ask]');
  await toast(sellerPage, 'Ask placed at $205.00');
  await textOf(watcher, '[data-testid=lowest-ask-10]', '$205.00');
  await sellerPage.locator('[data-testid=my-orders] li', { hasText: '$205.00' }).waitFor({ timeout: WAIT });

  step('a buyer crosses over REST: the match shows, the seller sees the sold toast');
  await rest('POST', '/bids', buyer.token, { product_id: product.id, size: '10', price: '210.00' });
  const saleDelay = await textOf(watcher, '[data-testid=last-sale-10]', '$205.00');
  console.log(`  last sale shown ${saleDelay} ms after the 201`);
  await watcher.locator('[data-testid=matches] td', { hasText: '$205.00' }).first().waitFor({ timeout: WAIT });
  await textOf(watcher, '[data-testid=lowest-ask-10]', '—');
  await toast(sellerPage, 'Your Air Jordan 1 Chicago (size 10) sold for $205.00!');

  step('a match the server sends again is not toasted again');
  // As the server would after losing its record of what it delivered.
  const notices = await rest('GET', '/notifications', seller.token);
  const again = notices.items[notices.items.length - 1];
  const soldToasts = () => sellerPage.locator('[data-testid=toast]', { hasText: 'sold for $205.00' }).count();
  const toastsBefore = await soldToasts();
  // With a seq the feed has not seen, so that only the toast's own check
  // (notification ids only grow) can stop it; the feed's seq is put back.
  await sellerPage.evaluate((notice) => {
    const seen = feed.userSeq;
    feed.receive({ ...notice, seq: seen + 1 });
    feed.userSeq = seen;
  }, again);
  await sellerPage.waitForTimeout(300);
  if (await soldToasts() !== toastsBefore) throw new Error(`notification ${again.notification_id} toasted twice`);

  step('the seller places and cancels an ask from the page, its price typed with a decimal comma');
  await sellerPage.fill('[data-testid=price]', '240,00');
  await sellerPage.click('[data-testid=trade] button[name=ask]');
  await textOf(watcher, '[data-testid=lowest-ask-10]', '$240.00');
  const order = sellerPage.locator('[data-testid=my-orders] li', { hasText: '$240.00' });
  // A double click cancels once, and says nothing of an order "already
  // cancelled" (the second DELETE's 409 would count as a failure too).
  let cancelsSent = 0;
  const countCancels = (request) => {
    if (request.method() === 'DELETE') cancelsSent += 1;
  };
  sellerPage.on('request', countCancels);
  await order.getByRole('button', { name: 'Cancel' }).dblclick();
  await order.waitFor({ state: 'detached', timeout: WAIT });
  await textOf(watcher, '[data-testid=lowest-ask-10]', '—');
  sellerPage.off('request', countCancels);
  if (cancelsSent !== 1) throw new Error(`a double click sent ${cancelsSent} cancels`);
  await textOf(sellerPage, '[data-testid=trade-error]', '');
  // A thousands separator is not a decimal comma: "1,000" is not $1.00,
  // which would sell at the highest bid. It is refused before it is sent.
  let sentWithComma = 0;
  const countOrders = (request) => {
    if (/\/api\/v1\/(asks|bids)$/.test(request.url()) && request.method() === 'POST') sentWithComma += 1;
  };
  sellerPage.on('request', countOrders);
  await sellerPage.fill('[data-testid=price]', '1,000');
  await sellerPage.click('[data-testid=trade] button[name=ask]');
  await textOf(sellerPage, '[data-testid=trade-error]', 'Write the price without a thousands separator, e.g. 1000.00.');
  sellerPage.off('request', countOrders);
  if (sentWithComma !== 0) throw new Error(`"1,000" was sent as an order ${sentWithComma} time(s)`);

  step('Sell Now sells at the highest bid, immediate-or-cancel, once for a double click');
  const isAsk = (request) => request.url().endsWith('/api/v1/asks') && request.method() === 'POST';
  let asksSent = 0;
  sellerPage.on('request', (request) => { if (isAsk(request)) asksSent += 1; });
  const sellNow = sellerPage.waitForRequest(isAsk);
  await sellerPage.dblclick('[data-testid=sell-now]');
  const sellRequest = await sellNow;
  const sold = sellRequest.postDataJSON();
  if (sold.time_in_force !== 'ioc' || sold.price !== '200.00') {
    throw new Error(`Sell Now sent ${JSON.stringify(sold)}`);
  }
  // A retry after a lost answer must not place a second order.
  if (!/^[0-9a-f]{32}$/.test(sellRequest.headers()['idempotency-key'] || '')) {
    throw new Error(`an order went without an Idempotency-Key: ${JSON.stringify(sellRequest.headers())}`);
  }
  await toast(sellerPage, 'Your Air Jordan 1 Chicago (size 10) sold for $200.00!');
  await textOf(watcher, '[data-testid=last-sale-10]', '$200.00');
  if (asksSent !== 1) throw new Error(`a double click on Sell Now sent ${asksSent} orders`);

  step('the connection drops: the page reconnects and resumes without missing an event');
  const sentFrames = [];
  watcher.on('websocket', (socket) => socket.on('framesent', (frame) => sentFrames.push(String(frame.payload))));
  // Everything before the drop applied first: an event of the last step
  // still on its way would be resumed too, and counted as missed.
  const current = (await rest('GET', `/products/${product.id}/book?size=10`)).seq;
  await watcher.waitForFunction((seq) => feed.seq === seq, current, { timeout: WAIT });
  // The third attempt's backoff (1.5 to 2.5 s): the bid lands while the
  // page is certainly away.
  const seqBefore = await watcher.evaluate(() => { feed.attempt = 2; feed.socket.close(); return feed.seq; });
  await textOf(watcher, '[data-testid=live]', 'Reconnecting…');
  await rest('POST', '/bids', bidder.token, { product_id: product.id, size: '9', price: '150.00' });
  await textOf(watcher, '[data-testid=live]', 'Live');
  await textOf(watcher, '[data-testid=highest-bid-9]', '$150.00');
  const resumes = sentFrames.map((frame) => JSON.parse(frame)).filter((message) => message.type === 'subscribe');
  if (resumes.length !== 1 || resumes[0].since_seq !== seqBefore) {
    throw new Error(`expected one resume from seq ${seqBefore}, the page sent ${JSON.stringify(resumes)}`);
  }
  if (await watcher.evaluate(() => feed.seq) !== seqBefore + 1) {
    throw new Error('the page did not apply exactly the one event it missed');
  }
  await textOf(watcher, '[data-testid=highest-bid-10]', '—');

  step('a socket that falls silent is replaced, though the browser never saw it close');
  // Deaf to the old socket from here: as if the network had gone and
  // the browser had not noticed.
  await watcher.evaluate(() => {
    window.silenced = feed.socket;
    feed.socket.onmessage = null;
    feed.socket.onclose = null;
    feed.heartbeat = 300;
  });
  await watcher.waitForFunction(
    () => feed.socket && feed.socket !== window.silenced && feed.socket.readyState === WebSocket.OPEN,
    null, { timeout: WAIT });
  await rest('POST', '/bids', bidder.token, { product_id: product.id, size: '9', price: '155.00' });
  await textOf(watcher, '[data-testid=highest-bid-9]', '$155.00');
  await textOf(watcher, '[data-testid=live]', 'Live');

  step('a fuller book, depth and open orders, as a signed-in seller sees it');
  for (const price of ['180.00', '185.00', '190.00', '190.00']) {
    await rest('POST', '/bids', bidder.token, { product_id: product.id, size: '10', price });
  }
  for (const price of ['215.00', '225.00', '225.00']) {
    await rest('POST', '/asks', bidder.token, { product_id: product.id, size: '10', price });
  }
  await sellerPage.fill('[data-testid=price]', '219.00');
  await sellerPage.click('[data-testid=trade] button[name=ask]');
  await textOf(sellerPage, '[data-testid=lowest-ask-10]', '$215.00');
  await textOf(sellerPage, '[data-testid=highest-bid-10]', '$190.00');
  await sellerPage.locator('[data-testid=book] td', { hasText: '$219.00' }).waitFor({ timeout: WAIT });
  await sellerPage.locator('[data-testid=my-orders] li', { hasText: '$219.00' }).waitFor({ timeout: WAIT });
  // The picture in the README: a signed-in seller with an open order.
  if (process.env.BIDASK_SCREENSHOT) {
    await sellerPage.setViewportSize({ width: 1100, height: 820 });
    await sellerPage.evaluate(() => {
      const toasts = document.getElementById('toasts');
      while (toasts.children.length > 1) toasts.firstElementChild.remove();
    });
    await sellerPage.screenshot({ path: process.env.BIDASK_SCREENSHOT });
    console.log(`  screenshot: ${process.env.BIDASK_SCREENSHOT}`);
  }

  step('on a phone the page fits its width, the bar leaves the screen to the page, and the trade form comes before the book');
  const fits = (page) => page.evaluate(() => {
    const bar = document.querySelector('.bar');
    const box = (testid) => document.querySelector(`[data-testid=${testid}]`).getBoundingClientRect();
    return {
      scroll: document.documentElement.scrollWidth,
      width: window.innerWidth,
      bar: bar.getBoundingClientRect().height,
      sticky: getComputedStyle(bar).position === 'sticky',
      font: parseFloat(getComputedStyle(document.querySelector('input')).fontSize),
      markets: box('markets'),
      trade: box('trade'),
      book: box('book'),
    };
  });
  // Wide, the trade form is the right-hand column beside the book.
  const wide = await fits(sellerPage);
  if (!(wide.trade.left >= wide.book.right)) {
    throw new Error(`at 1100 px the trade form (left ${wide.trade.left}) is not beside the book (right ${wide.book.right})`);
  }
  for (const width of [375, 320]) {
    await sellerPage.setViewportSize({ width, height: 740 });
    const shape = await fits(sellerPage);
    if (shape.scroll > shape.width) throw new Error(`at ${width} px the seller's page is ${shape.scroll} px wide`);
  }
  await sellerPage.setViewportSize({ width: 1100, height: 900 });
  const phone = await browser.newPage({ viewport: { width: 320, height: 640 } });
  watch(phone, 'phone');
  await phone.goto(`${base}/products/${product.id}`);
  await phone.locator('[data-testid=book] td', { hasText: '$219.00' }).waitFor({ timeout: WAIT });
  const signedOut = await fits(phone);
  if (signedOut.scroll > signedOut.width) throw new Error(`at 320 px the page is ${signedOut.scroll} px wide`);
  if (signedOut.sticky && signedOut.bar > 640 * 0.2) {
    throw new Error(`a ${signedOut.bar} px bar stays over a 640 px screen`);
  }
  // iOS zooms into a text box whose font is under 16 px.
  if (signedOut.font < 16) throw new Error(`inputs use a ${signedOut.font} px font`);
  // One column: the sizes, then the form, and the book below both.
  const { markets, trade, book } = signedOut;
  if (!(markets.bottom <= trade.top && trade.bottom <= book.top)) {
    throw new Error(`at 320 px the markets end at ${markets.bottom}, the trade form spans ${trade.top}–${trade.bottom} and the book starts at ${book.top}`);
  }
  await phone.close();

  step('a refused refresh of the open orders keeps them shown');
  const ordersRoute = '**/api/v1/orders?**';
  faking429 = true;
  await sellerPage.route(ordersRoute, (route) => route.fulfill({
    status: 429,
    contentType: 'application/json',
    headers: { 'Retry-After': '1' },
    body: JSON.stringify({ error: { code: 'rate_limited', message: 'too many requests' } }),
  }));
  await sellerPage.evaluate(() => page.refreshOrders());
  await sellerPage.waitForTimeout(300);
  await sellerPage.unroute(ordersRoute);
  faking429 = false;
  if (await sellerPage.locator('[data-testid=my-orders] li', { hasText: '$219.00' }).count() !== 1) {
    throw new Error('a 429 emptied the open orders');
  }

  step('a page whose first read of recent sales is refused still shows live prices');
  const refusedPage = await browser.newPage();
  watch(refusedPage, 'refused');
  faking429 = true;
  await refusedPage.route('**/api/v1/products/*/matches?**', (route) => route.fulfill({
    status: 429,
    contentType: 'application/json',
    headers: { 'Retry-After': '1' },
    body: JSON.stringify({ error: { code: 'rate_limited', message: 'too many requests' } }),
  }));
  await refusedPage.goto(`${base}/products/${product.id}`);
  await textOf(refusedPage, '[data-testid=live]', 'Live');
  const passing9 = await rest('POST', '/bids', bidder.token, { product_id: product.id, size: '9', price: '157.00' });
  await textOf(refusedPage, '[data-testid=highest-bid-9]', '$157.00');
  // Once reads are answered again, the list is read again by itself.
  await refusedPage.unroute('**/api/v1/products/*/matches?**');
  faking429 = false;
  await refusedPage.locator('[data-testid=matches] td').first().waitFor({ timeout: WAIT });
  await refusedPage.close();
  await rest('DELETE', `/orders/${passing9.order.id}`, bidder.token);

  step('Buy Now buys at the lowest ask, immediate-or-cancel, and the buyer hears of it');
  const isBid = (request) => request.url().endsWith('/api/v1/bids') && request.method() === 'POST';
  const buyNow = sellerPage.waitForRequest(isBid);
  await sellerPage.click('[data-testid=buy-now]');
  const bought = (await buyNow).postDataJSON();
  if (bought.time_in_force !== 'ioc' || bought.price !== '215.00' || bought.size !== '10') {
    throw new Error(`Buy Now sent ${JSON.stringify(bought)}`);
  }
  await toast(sellerPage, 'You bought Air Jordan 1 Chicago (size 10) for $215.00!');
  await textOf(watcher, '[data-testid=last-sale-10]', '$215.00');
  // The next ask up is the seller's own, which Buy Now now offers.
  await textOf(sellerPage, '[data-testid=lowest-ask-10]', '$219.00');
  await textOf(sellerPage, '[data-testid=buy-now]', 'Buy Now $219.00');

  step('Buy Now against your own ask is not placed, and the page says why');
  await sellerPage.click('[data-testid=buy-now]');
  await textOf(sellerPage, '[data-testid=trade-error]', 'Not placed: it would have traded with your own order.');

  step('Enter in the price box places nothing: it would have to guess the side');
  let ordersSent = 0;
  sellerPage.on('request', (request) => { if (isBid(request) || isAsk(request)) ordersSent += 1; });
  await sellerPage.fill('[data-testid=price]', '230.00');
  await sellerPage.press('[data-testid=price]', 'Enter');
  await sellerPage.waitForTimeout(500);
  if (ordersSent !== 0) throw new Error(`Enter in the price box sent ${ordersSent} orders`);

  step('a sale written to a socket that died unread reaches the seller after the reconnect');
  // The server writes the sale and records it as delivered; the page
  // never reads it, as when a phone loses its network mid-stream.
  await sellerPage.evaluate(() => {
    feed.socket.onmessage = null;
    feed.socket.onclose = null;
  });
  await rest('POST', '/bids', buyer.token, { product_id: product.id, size: '10', price: '219.00' });
  // The delivery is recorded off the connection's path.
  await sellerPage.waitForTimeout(500);
  // The socket dies, and a second sale happens before the page is back:
  // the server's own resume (from its delivered mark) sends that one
  // first, and the page's resume must still bring the first.
  await sellerPage.evaluate(() => {
    const dead = feed.socket;
    feed.socket = null;
    dead.close();
  });
  await rest('POST', '/asks', seller.token, { product_id: product.id, size: '10', price: '218.00' });
  await rest('POST', '/bids', buyer.token, { product_id: product.id, size: '10', price: '218.00' });
  await sellerPage.evaluate(() => feed.connect());
  await toast(sellerPage, 'Your Air Jordan 1 Chicago (size 10) sold for $218.00!');
  await toast(sellerPage, 'Your Air Jordan 1 Chicago (size 10) sold for $219.00!');

  step('a session the server no longer takes ends with a notice, not silently');
  faking401 = true;
  // An order refused for its session: the refusal ends the session.
  await sellerPage.evaluate(() => { current.token += 'x'; return page.place('ask', '999.00'); });
  await toast(sellerPage, 'Your session has ended; sign in again.');
  await sellerPage.locator('[data-testid=sign-in]').waitFor({ timeout: WAIT });
  // Neither the refusal nor the last message meant for the user who was
  // signed in stays on the page.
  await textOf(sellerPage, '[data-testid=trade-error]', 'Sign in to trade.');
  faking401 = false;
  step('a deep book: the levels past the ten shown are counted, and the best price stays right as its top goes');
  const deep = [];
  for (let cents = 5000; cents <= 5100; cents += 1) {
    const price = `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`;
    deep.push(await rest('POST', '/bids', bidder.token, { product_id: product.id, size: '11', price }));
  }
  const deepPage = await browser.newPage();
  watch(deepPage, 'deep');
  await deepPage.goto(`${base}/products/${product.id}`);
  await textOf(deepPage, '[data-testid=highest-bid-11]', '$51.00');
  await deepPage.click('[data-testid=size-11]');
  const bidLevels = (await rest('GET', `/products/${product.id}/book?size=11&depth=1000`)).bids.length;
  await textOf(deepPage, '[data-testid=more-bids]', `${bidLevels - 10} more price levels`);
  // Cancel the best hundred of them.
  for (const placed of deep.slice(1)) {
    await rest('DELETE', `/orders/${placed.order.id}`, bidder.token);
  }
  await textOf(deepPage, '[data-testid=highest-bid-11]', '$50.00');
  const left = bidLevels - 100 - 10;
  if (left > 0) await textOf(deepPage, '[data-testid=more-bids]', `${left} more price level${left === 1 ? '' : 's'}`);
  else await deepPage.locator('[data-testid=more-bids]').waitFor({ state: 'detached', timeout: WAIT });
  await deepPage.close();

  step('a sale the feed brings while the recent sales are being read is listed, once');
  const salesBefore = (await rest('GET', `/products/${product.id}/matches?size=10&limit=10`)).items;
  let fetched;
  const hasFetched = new Promise((resolve) => { fetched = resolve; });
  let release;
  const released = new Promise((resolve) => { release = resolve; });
  const slowSales = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  watch(slowSales, 'slow sales');
  // The page's read of the sales is answered as it stood before the sale.
  await slowSales.route('**/api/v1/products/*/matches?**', async (route) => {
    const response = await route.fetch();
    fetched();
    await released;
    await route.fulfill({ response });
  }, { times: 1 });
  await slowSales.goto(`${base}/products/${product.id}`);
  await textOf(slowSales, '[data-testid=live]', 'Live');
  await hasFetched;
  // At least one ask to buy from, whatever the steps before left.
  await rest('POST', '/asks', bidder.token, { product_id: product.id, size: '10', price: '990.00' });
  const lowest = (await rest('GET', `/products/${product.id}/book?size=10`)).asks[0].price;
  const crossed = await rest('POST', '/bids', buyer.token, { product_id: product.id, size: '10', price: lowest, time_in_force: 'ioc' });
  if (crossed.matches.length !== 1) throw new Error(`the bid at ${lowest} made ${crossed.matches.length} matches`);
  await textOf(slowSales, '[data-testid=last-sale-10]', `$${lowest}`);
  release();
  const expectedRows = Math.min(10, salesBefore.length + 1) + 1; // and the heading
  await slowSales.waitForFunction((rows) => document.querySelectorAll('[data-testid=matches] tr').length === rows,
    expectedRows, { timeout: WAIT }).catch(() => {});
  const listed = await slowSales.evaluate(() => [...document.querySelectorAll('[data-testid=matches] tr')]
    .slice(1).map((row) => row.firstElementChild.textContent));
  const wanted = [`$${lowest}`, ...salesBefore.map((sale) => `$${sale.price}`)].slice(0, 10);
  if (JSON.stringify(listed) !== JSON.stringify(wanted)) {
    throw new Error(`recent sales ${JSON.stringify(listed)}, not ${JSON.stringify(wanted)}`);
  }
  await slowSales.close();

  step('signing in or out in one tab is followed by the others');
  const tabs = await browser.newContext();
  const [first, other] = [await tabs.newPage(), await tabs.newPage()];
  watch(first, 'first tab');
  watch(other, 'other tab');
  for (const tab of [first, other]) {
    await tab.goto(`${base}/products/${product.id}`);
    await textOf(tab, '[data-testid=live]', 'Live');
  }
  await signIn(first, buyer);
  await textOf(other, '[data-testid=signed-in]', buyer.username);
  await first.getByRole('button', { name: 'Sign out' }).click();
  await other.locator('[data-testid=sign-in]').waitFor({ timeout: WAIT });
  await tabs.close();

  step('names are shown as text, never run as markup');
  const markup = '<img src=x onerror="window.injected=1">Dunk';
  const tricky = await rest('POST', '/products', admin.token, {
    sku: `DUNK-${run}`, name: markup, brand: '<b>Nike</b>', sizes: ['10'],
  });
  const reader = await browser.newPage();
  watch(reader, 'reader');
  await reader.goto(base);
  await reader.getByText(markup, { exact: true }).first().waitFor({ timeout: WAIT });
  await reader.goto(`${base}/products/${tricky.id}`);
  await reader.getByText(markup, { exact: true }).first().waitFor({ timeout: WAIT });
  const injected = await reader.evaluate(() => ({ ran: window.injected, images: document.querySelectorAll('main img').length }));
  if (injected.ran !== undefined || injected.images !== 0) {
    throw new Error(`a product name was run as markup: ${JSON.stringify(injected)}`);
  }
  await reader.close();

  step('a browser that refuses storage still signs in, and toasts a sale once');
  const runner = await rest('POST', '/products', admin.token, {
    sku: `RUN-${run}`, name: 'Storage Runner', brand: 'Nike', sizes: ['10'],
  });
  const refusing = await register('refusing');
  const blocked = await browser.newContext();
  // Site data blocked, or a full quota: every write throws.
  await blocked.addInitScript(() => {
    Storage.prototype.setItem = () => { throw new DOMException('blocked', 'SecurityError'); };
  });
  const refuser = await blocked.newPage();
  watch(refuser, 'refusing storage');
  await refuser.goto(`${base}/products/${runner.id}`);
  await textOf(refuser, '[data-testid=live]', 'Live');
  await signIn(refuser, refusing);
  await rest('POST', '/asks', refusing.token, { product_id: runner.id, size: '10', price: '150.00' });
  await rest('POST', '/bids', buyer.token, { product_id: runner.id, size: '10', price: '150.00' });
  const runnerSold = 'Your Storage Runner (size 10) sold for $150.00!';
  await toast(refuser, runnerSold);
  // Across the connection's next start, the sale comes again with a seq
  // the feed has not seen, so that only the toast's own record, here in
  // memory, can stop it. The page handles it at once: counted after.
  await refuser.evaluate(() => feed.restart());
  await textOf(refuser, '[data-testid=live]', 'Live');
  const refusingNotices = await rest('GET', '/notifications', refusing.token);
  const resent = refusingNotices.items[refusingNotices.items.length - 1];
  const handled = await refuser.evaluate((notice) => {
    const seq = feed.userSeq + 1;
    feed.receive({ ...notice, seq });
    return feed.userSeq === seq;
  }, resent);
  if (!handled) throw new Error('the sale sent again was not handled');
  const runnerToasts = await refuser.locator('[data-testid=toast]', { hasText: runnerSold }).count();
  if (runnerToasts !== 1) throw new Error(`the sale was toasted ${runnerToasts} times`);
  await blocked.close();

  step('an ask placed in one tab is listed in the other tabs of that browser');
  const sellerTabs = await browser.newContext();
  const [placing, listing] = [await sellerTabs.newPage(), await sellerTabs.newPage()];
  watch(placing, 'placing tab');
  watch(listing, 'listing tab');
  await placing.goto(`${base}/products/${product.id}`);
  await signIn(placing, seller);
  await listing.goto(`${base}/products/${product.id}`);
  await textOf(listing, '[data-testid=signed-in]', seller.username);
  await textOf(listing, '[data-testid=live]', 'Live');
  await placing.fill('[data-testid=price]', '296.00');
  await placing.click('[data-testid=trade] button[name=ask]');
  await listing.locator('[data-testid=my-orders] li', { hasText: '$296.00' }).waitFor({ timeout: WAIT });

  step('a second click just after the first order was answered places nothing more');
  // In front: a hidden tab draws (requestAnimationFrame) only now and then.
  await placing.bringToFront();
  let asksPlaced = 0;
  placing.on('request', (request) => {
    if (request.url().endsWith('/api/v1/asks') && request.method() === 'POST') asksPlaced += 1;
  });
  await placing.fill('[data-testid=price]', '297.00');
  await placing.click('[data-testid=trade] button[name=ask]');
  await toast(placing, 'Ask placed at $297.00');
  // Once the page has drawn the answer (two frames), a person's click, not
  // one that waits for the button to be enabled.
  await placing.evaluate(() => new Promise((drawn) => requestAnimationFrame(() => requestAnimationFrame(drawn))));
  await placing.click('[data-testid=trade] button[name=ask]', { force: true });
  await placing.waitForTimeout(300);
  if (asksPlaced !== 1) throw new Error(`a click right after the answer sent ${asksPlaced} orders`);
  // The button had the focus, lost it while disabled, and has it back.
  await placing.waitForFunction(() => document.activeElement?.getAttribute('name') === 'ask', null, { timeout: WAIT });

  step('a toast goes at a tap');
  const placed = placing.locator('[data-testid=toast]', { hasText: 'Ask placed at $297.00' });
  await placed.click();
  // Well before it would go by itself, 8 s after it came.
  await placed.waitFor({ state: 'detached', timeout: 2000 });
  for (const price of ['296.00', '297.00']) {
    await placing.locator('[data-testid=my-orders] li', { hasText: `$${price}` })
      .getByRole('button', { name: 'Cancel' }).click();
  }
  await sellerTabs.close();

  step('a stored session of another shape is dropped, and the page offers to sign in');
  const oddContext = await browser.newContext();
  const odd = await oddContext.newPage();
  watch(odd, 'odd session');
  await odd.goto(`${base}/`);
  await odd.evaluate(() => localStorage.setItem('bidask.session', '{"token":"x"}'));
  await odd.reload();
  await odd.locator('[data-testid=sign-in]').waitFor({ timeout: WAIT });
  await odd.locator('[data-testid=catalog]').waitFor({ timeout: WAIT });
  await oddContext.close();

  step('the catalog beyond its first page is a click away');
  for (let index = 0; index < 50; index += 1) {
    await rest('POST', '/products', admin.token, {
      sku: `FILL-${run}-${index}`, name: `Filler ${index}`, brand: 'Filler', sizes: ['10'],
    });
  }
  const browsing = await browser.newPage();
  watch(browsing, 'browsing');
  await browsing.goto(base);
  await browsing.getByText('Filler 49', { exact: true }).waitFor({ timeout: WAIT });
  // Fifty newer products fill the first page.
  if (await browsing.getByText('Air Jordan 1 Chicago', { exact: true }).count() !== 0) {
    throw new Error('the first page of the catalog holds more than fifty products');
  }
  await browsing.click('[data-testid=more-products]');
  await browsing.getByText('Air Jordan 1 Chicago', { exact: true }).waitFor({ timeout: WAIT });
  // Nothing is older: the last page needs no button.
  await browsing.locator('[data-testid=more-products]').waitFor({ state: 'hidden', timeout: WAIT });
  await browsing.close();

  step('an order that expires leaves the list with a word');
  const expiring = await register('expiring');
  const expiringContext = await browser.newContext();
  const expiringPage = await expiringContext.newPage();
  watch(expiringPage, 'expiring');
  await expiringPage.goto(`${base}/products/${product.id}`);
  await signIn(expiringPage, expiring);
  await textOf(expiringPage, '[data-testid=live]', 'Live');
  // Placed once the page is up, with time to list it before it expires
  // (its price is told only while it is listed): over REST, which raises
  // no event, so the page is told as another tab of its browser would.
  const expiresAt = new Date(Date.now() + 10_000).toISOString();
  const doomed = await rest('POST', '/bids', expiring.token, {
    product_id: product.id, size: '9', price: '1.00', expires_at: expiresAt,
  });
  // And three of another sneaker, which this page does not list: told by
  // the product's name, read once for the three, without a price. Later,
  // so that the refresh their events cause cannot drop the first order
  // from the list before that one's own event comes.
  let runnerReads = 0;
  expiringPage.on('request', (request) => {
    if (new URL(request.url()).pathname === `/api/v1/products/${runner.id}`) runnerReads += 1;
  });
  for (const price of ['1.00', '2.00', '3.00']) {
    await rest('POST', '/bids', expiring.token, {
      product_id: runner.id, size: '10', price,
      expires_at: new Date(Date.parse(expiresAt) + 3000).toISOString(),
    });
  }
  await expiringPage.evaluate((user) => new BroadcastChannel('bidask.orders').postMessage({ user }), expiring.id);
  try {
    await expiringPage.locator(`[data-testid=order-${doomed.order.id}]`)
      .waitFor({ timeout: Math.max(1, Date.parse(expiresAt) - Date.now()) });
  } catch {
    throw new Error('the order was not listed before it expired: the page was too slow for this step');
  }
  const dueIn = { timeout: WAIT + 10_000 };
  await expiringPage.locator('[data-testid=toast]', { hasText: 'Your bid for Air Jordan 1 Chicago (size 9) at $1.00 expired.' })
    .first().waitFor(dueIn);
  await expiringPage.locator('[data-testid=toast]', { hasText: 'Your bid for Storage Runner (size 10) expired.' })
    .first().waitFor(dueIn);
  await expiringPage.waitForTimeout(1000);
  if (runnerReads !== 1) throw new Error(`three expiries of one sneaker read its name ${runnerReads} times`);
  await expiringPage.locator(`[data-testid=order-${doomed.order.id}]`).waitFor({ state: 'detached', timeout: WAIT });
  await expiringContext.close();

  step('the price box names a coarse tick, with an example on it');
  const coarse = await rest('POST', '/products', admin.token, {
    sku: `COARSE-${run}`, name: 'Coarse Tick', brand: 'Nike', sizes: ['10'], tick_size: '5.00',
  });
  const coarsePage = await browser.newPage();
  watch(coarsePage, 'coarse');
  await coarsePage.goto(`${base}/products/${coarse.id}`);
  await coarsePage.waitForFunction(
    () => document.querySelector('[data-testid=price]')?.placeholder === 'Price in steps of 5.00, e.g. 210.00',
    null,
    { timeout: WAIT },
  );
  await coarsePage.close();

  step('an address that names no sneaker says so, and one with a trailing slash is forgiven');
  // Not watched: its 404s are the point. Its script must not throw.
  const lost = await browser.newPage();
  lost.on('pageerror', (error) => failures.push(`lost: ${error.message}`));
  for (const path of [`/products/${product.id + 1_000_000}`, '/products/abc']) {
    const answer = await lost.goto(`${base}${path}`);
    if (answer.status() !== 404) throw new Error(`${path} answered ${answer.status()}`);
    await lost.locator('[data-testid=not-found]').waitFor({ timeout: WAIT });
  }
  await lost.goto(`${base}/products/${product.id}/`);
  await lost.waitForURL(`**/products/${product.id}`);
  await lost.locator('[data-testid=product-name]').waitFor({ timeout: WAIT });
  await lost.close();

  if (failures.length) throw new Error(`the page reported errors:\n${failures.join('\n')}`);
  console.log('the product page works');
} finally {
  await browser.close();
}
