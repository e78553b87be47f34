// The bidask product page: the catalog at `/`, a product at
// `/products/{id}`. Plain JavaScript against the public API (REST under
// /api/v1 and the WebSocket feed at /ws), no build step.
//
// Prices stay the decimal strings the API sends; they are compared as
// numbers only to sort levels, never added up.
'use strict';

const TOKEN_KEY = 'bidask.session';

/** Builds an element: h('td', {class: 'bid'}, '210.00'). Text is never HTML. */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      element.append(child instanceof Node ? child : String(child));
    }
  }
  return element;
}

/** Sets an element's text when it differs: an unchanged cell costs the browser nothing. */
function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

const money = (price) => (price === null || price === undefined ? '—' : `$${price}`);

// ---- session ---------------------------------------------------------------

const session = {
  // A stored value of another shape (another version's, or edited by
  // hand) is no session: the page would fail on it before it could
  // offer to sign in again.
  load() {
    try {
      const value = JSON.parse(localStorage.getItem(TOKEN_KEY));
      const valid = value && typeof value.token === 'string' && value.user
        && Number.isInteger(value.user.id) && typeof value.user.username === 'string';
      return valid ? value : null;
    } catch {
      return null;
    }
  },
  // Storage the browser refuses (blocked site data, a full quota) costs
  // the session its place across reloads, not the sign-in itself.
  save(value) {
    try {
      if (value) localStorage.setItem(TOKEN_KEY, JSON.stringify(value));
      else localStorage.removeItem(TOKEN_KEY);
    } catch {
      // Kept in memory only.
    }
  },
};

let current = session.load(); // {token, user: {id, username}} or null

class ApiError extends Error {
  constructor(status, code, message, retryAfter = 0) {
    super(message);
    this.status = status;
    this.code = code;
    // Seconds the server asked to wait (`Retry-After`), or 0.
    this.retryAfter = retryAfter;
  }
}

/** A fresh Idempotency-Key (crypto.randomUUID needs a secure origin). */
function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

async function api(method, path, body, extraHeaders = {}) {
  const headers = { Accept: 'application/json', ...extraHeaders };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const token = current && current.token;
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      // A request the server never answers must not hold the page (an
      // order in flight disables the trade buttons) for ever.
      signal: typeof AbortSignal.timeout === 'function' ? AbortSignal.timeout(20000) : undefined,
    });
  } catch {
    // The browser's own words ("Failed to fetch") tell a user nothing.
    throw new ApiError(0, 'unreachable', 'The server could not be reached. Try again in a moment.');
  }
  const payload = await response.json().catch(() => null);
  if (!response.ok) {
    const error = payload && payload.error ? payload.error : {};
    // Only if the refused token is still the one in use: an answer to a
    // request sent before the user signed in again must not end the
    // new session.
    if (response.status === 401 && current && current.token === token) signOut(SESSION_ENDED);
    // A proxy's error page is not the API's JSON, and HTTP/2 has no
    // status text: say at least what the status was.
    let message = error.message || response.statusText || `The server answered ${response.status}.`;
    const wait = response.headers.get('Retry-After');
    if (response.status === 429 && wait) message += ` Try again in ${wait} s.`;
    throw new ApiError(response.status, error.code || 'error', message, Number(wait) || 0);
  }
  // Every answer of the API is JSON; anything else (a captive portal's
  // page) is not an answer to rely on.
  if (payload === null) {
    throw new ApiError(response.status, 'bad_response', 'The server sent an answer this page cannot read. Try again in a moment.');
  }
  return payload;
}

const SESSION_ENDED = 'Your session has ended; sign in again.';

/**
 * A refusal of the session, which `api` has ended with its notice: no
 * message for the page, which would show it to whoever signs in next.
 */
const sessionEnded = (failure) => failure instanceof ApiError && failure.status === 401;

/** Signs out; `notice` says why, when it was not the user's choice. */
function signOut(notice) {
  // What the last user was told is not for whoever uses the page next.
  document.getElementById('toasts').replaceChildren();
  if (notice) toast(notice);
  current = null;
  session.save(null);
  renderAccount();
  if (feed) feed.restart();
  if (page) page.accountChanged();
}

function renderAccount() {
  const account = document.getElementById('account');
  account.replaceChildren();
  if (current) {
    account.append(
      h('span', { 'data-testid': 'signed-in' }, current.user.username),
      h('button', { class: 'secondary', onclick: () => signOut() }, 'Sign out'),
    );
    return;
  }
  const form = document.getElementById('sign-in').content.firstElementChild.cloneNode(true);
  const error = h('p', { class: 'error', role: 'alert', 'data-testid': 'sign-in-error' });
  // A new try clears the last one's error, also when the browser's own
  // checks stop it before it is sent (then they say what is wrong).
  form.addEventListener('invalid', () => { error.textContent = ''; }, true);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    const register = event.submitter && event.submitter.name === 'register';
    const username = form.elements.username.value.trim();
    const password = form.elements.password.value;
    try {
      const reply = await api('POST', register ? '/auth/register' : '/auth/login', { username, password });
      current = { token: reply.token, user: reply.user };
      session.save(current);
      renderAccount();
      if (feed) feed.restart();
      if (page) page.accountChanged();
      // The form that held the focus is gone: on to what the user came
      // for, the price box or the first product, not back to the top.
      const next = page && page.view ? page.view.price : document.querySelector('#main a');
      if (next) next.focus();
    } catch (failure) {
      error.textContent = failure.message;
    }
  });
  account.append(form, error);
}

// ---- toasts ----------------------------------------------------------------

const MAX_TOASTS = 3;

// A toast goes at a tap: on a phone three of them cover the trade buttons.
function toast(message) {
  const toasts = document.getElementById('toasts');
  const item = h('div', { class: 'toast', role: 'status', 'data-testid': 'toast', title: 'Dismiss',
    onclick: () => item.remove() }, message);
  toasts.append(item);
  while (toasts.children.length > MAX_TOASTS) toasts.firstElementChild.remove();
  setTimeout(() => item.remove(), 8000);
}

// ---- live indicator --------------------------------------------------------

function setLive(state) {
  const live = document.getElementById('live');
  live.className = `live ${state}`;
  live.textContent = { on: 'Live', retry: 'Reconnecting…', off: 'Offline' }[state];
}

// ---- the feed --------------------------------------------------------------

/**
 * One WebSocket to /ws: authenticates (browsers cannot set headers, so with
 * an `auth` message), follows one product channel, and reconnects with
 * backoff, resuming with `since_seq` so nothing is missed or repeated.
 */
class Feed {
  constructor(productId, handlers) {
    this.channel = productId ? `product:${productId}` : null;
    this.handlers = handlers;
    this.seq = 0; // last applied seq of the product channel; 0 = none yet
    // The last seq of the user's own channel this page handled. The
    // server resumes that channel after what it recorded as delivered,
    // which counts events written to a socket that then died unread: on
    // reconnecting, the page resumes from what it actually got.
    this.userSeq = 0;
    // True from the `authenticated` of a reconnect until the page's own
    // resume of that channel is answered. The server joins the channel at
    // once from its delivered mark, which may be past `userSeq`: events it
    // sends from there are left for the resume, which sends them again
    // after the ones before them.
    this.userResuming = false;
    // The id of the subscribe that has not been answered yet, if any: one
    // resume at a time, or each gap would send another and every reply
    // would move `seq` back to where it was sent from.
    this.pending = null;
    this.requests = 0;
    this.attempt = 0;
    // When the current connection was first answered (0: not yet).
    this.upSince = 0;
    this.socket = null;
    this.timer = null;
    // The server sends something at least every heartbeat interval; a
    // socket silent for three of them is dead even if the browser has not
    // noticed (a phone that changed networks may not say so for minutes).
    this.heartbeat = 5000;
    this.heard = Date.now();
    this.watchdog = setInterval(() => {
      if (this.socket && Date.now() - this.heard > 3 * this.heartbeat) this.drop(this.socket);
    }, 2000);
  }

  connect() {
    clearTimeout(this.timer);
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const socket = new WebSocket(`${scheme}://${location.host}/ws`);
    this.socket = socket;
    this.pending = null;
    this.userResuming = false;
    this.heard = Date.now();
    socket.onmessage = (event) => {
      // A socket given up on (a restart on signing in or out) may still
      // deliver what was in flight: it is not this page's any more.
      if (this.socket !== socket) return;
      this.heard = Date.now();
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      this.receive(message);
    };
    socket.onclose = () => this.drop(socket);
  }

  /** Gives up on `socket` and reconnects with backoff. */
  drop(socket) {
    if (this.socket !== socket) return;
    this.socket = null;
    socket.close();
    setLive('retry');
    // 0.5 s, 1 s, 2 s … up to 15 s, with jitter so a restarted server
    // is not met by every page at once. A connection that stayed up a
    // while starts over at 0.5 s; one closed soon after it was answered
    // (a server that cuts a slow phone off each time) keeps backing off.
    if (this.upSince && Date.now() - this.upSince > 10000) this.attempt = 0;
    this.upSince = 0;
    const delay = Math.min(15000, 500 * 2 ** this.attempt) * (0.75 + Math.random() / 2);
    this.attempt += 1;
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** Reconnects now (after signing in or out). */
  restart() {
    this.userSeq = 0; // signed in or out: another user's channel, or none
    this.upSince = 0;
    const old = this.socket;
    this.socket = null;
    if (old) old.close();
    this.connect();
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  subscribe() {
    if (!this.channel || this.pending !== null) return;
    this.requests += 1;
    this.pending = `resume-${this.requests}`;
    this.pendingSince = Date.now();
    const message = { type: 'subscribe', channels: [this.channel], id: this.pending };
    if (this.seq > 0) message.since_seq = this.seq;
    this.send(message);
  }

  receive(message) {
    switch (message.type) {
      case 'welcome':
        if (message.heartbeat_interval_ms > 0) this.heartbeat = message.heartbeat_interval_ms;
        // With an id, so that a refusal for want of the database is seen:
        // a connection left anonymous would get no private events.
        if (current) this.send({ type: 'auth', token: current.token, id: 'auth' });
        this.subscribe();
        if (!this.channel) this.ready();
        break;
      case 'authenticated':
        if (this.userSeq > 0) {
          this.userResuming = true;
          this.send({ type: 'subscribe', channels: [`user:${message.user.id}`], since_seq: this.userSeq, id: 'user-resume' });
        }
        break;
      case 'subscribed':
        if (message.id === 'user-resume') this.userResuming = false;
        // The user's events start over from what the server still has
        // (a `seq` it never issued, events pruned): take them from there.
        // Not the automatic join's reset while the page's own resume is on
        // its way: that resume decides.
        if (message.reset && message.channel && message.channel.startsWith('user:')
          && (message.id === 'user-resume' || !this.userResuming)) this.userSeq = message.seq;
        if (message.channel === this.channel) {
          if (message.id === this.pending) this.pending = null;
          if (message.snapshot) {
            // A first subscription, or `reset`: the book starts over.
            this.handlers.snapshot(message.snapshot, Boolean(message.reset));
            this.seq = message.seq;
          } else {
            // A resume answers with the seq it was sent from; events
            // applied since stay applied.
            this.seq = Math.max(this.seq, message.seq);
          }
          this.ready();
        }
        break;
      case 'heartbeat': {
        // A subscribe that was never answered (refused without its id,
        // say for the message rate): start over on a new connection.
        if (this.pending !== null && Date.now() - this.pendingSince > 10000 && this.socket) {
          this.drop(this.socket);
          break;
        }
        // A quiet channel still shows a gap: resume from what we have.
        const latest = message.seqs && message.seqs[this.channel];
        if (latest !== undefined && latest > this.seq) this.subscribe();
        break;
      }
      case 'error':
        if (message.code === 'invalid_token' || message.code === 'token_expired') {
          signOut(SESSION_ENDED);
        } else if (message.id !== undefined && (message.id === this.pending || message.id === 'auth' || message.id === 'user-resume') && this.socket) {
          // The subscription or the sign-in was refused (say, the
          // database could not be read): start over on a new connection,
          // with backoff, rather than show a book that no longer moves or
          // miss the user's own events.
          this.drop(this.socket);
        }
        break;
      default:
        if (message.channel === this.channel) {
          if (message.seq <= this.seq) return; // already applied
          if (message.seq !== this.seq + 1) {
            this.subscribe(); // a gap: resume from the last applied event
            return;
          }
          this.seq = message.seq;
          this.handlers.event(message);
        } else if (message.channel && message.channel.startsWith('user:')) {
          if (this.userResuming) return; // the resume sends it again, in order
          if (message.seq <= this.userSeq) return; // handled before a resume
          this.userSeq = message.seq;
          this.handlers.private(message);
        }
    }
  }

  ready() {
    if (!this.upSince) {
      this.upSince = Date.now();
      if (this.handlers.live) this.handlers.live();
    }
    setLive('on');
  }
}

let feed = null;
let page = null;

// ---- the catalog -----------------------------------------------------------

async function showCatalog(main) {
  document.title = 'bidask';
  const list = h('ul', { class: 'products', 'data-testid': 'catalog' });
  const error = h('p', { class: 'error' });
  const more = h('button', { type: 'button', class: 'secondary more', 'data-testid': 'more-products', hidden: true },
    'More sneakers');
  // A page at a time, newest first, as the API lists them: the rest of
  // the catalog is a click away, not out of reach.
  let cursor = null;
  const loadPage = async () => {
    const after = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
    const products = await api('GET', `/products?limit=${CATALOG_PAGE}${after}`);
    list.append(...products.items.map(productCard));
    cursor = products.next_cursor;
    more.hidden = cursor === null;
    return products.items.length;
  };
  more.addEventListener('click', async () => {
    more.disabled = true;
    error.textContent = '';
    try {
      await loadPage();
    } catch (failure) {
      error.textContent = failure.message;
    } finally {
      more.disabled = false;
    }
  });
  const found = await loadPage();
  main.replaceChildren(
    h('h1', {}, 'Sneakers'),
    h('p', { class: 'muted' }, 'Lowest asks as the page was loaded. Pick a pair for its live bids and asks.'),
    found ? list : h('p', { class: 'muted' }, 'The catalog is empty.'),
    more,
    error,
  );
  feed = new Feed(null, { snapshot() {}, event() {}, private: (message) => privateEvent(message) });
  feed.connect();
}

/** How long the trade buttons rest after an order is placed. */
const PLACED_PAUSE_MS = 1000;

/** Products per page of the catalog: the API's default page. */
const CATALOG_PAGE = 50;

function productCard(product) {
  const asks = product.markets.map((market) => market.lowest_ask).filter((price) => price !== null);
  const lowest = asks.length ? asks.reduce((a, b) => (Number(b) < Number(a) ? b : a)) : null;
  return h('li', {},
    h('a', { class: 'card', href: `/products/${product.id}` },
      h('div', { class: 'muted' }, product.brand),
      h('strong', {}, product.name),
      h('div', { class: 'price' }, lowest === null ? 'No asks' : money(lowest)),
      h('div', { class: 'muted' }, 'Lowest ask')));
}

// Each match is toasted once per tab, across reconnects and reloads: the
// server sends a user's events again when its record of what was
// delivered lags behind (a connection that ended before the page answered
// a ping after them, a crash before the record), and notification ids
// only grow.
function privateEvent(message) {
  if (message.type === 'MATCH_CREATED' && current) {
    const key = `bidask.toasted.${current.user.id}`;
    if (message.notification_id > toasted.get(key)) {
      toasted.set(key, message.notification_id);
      toast(message.message);
    }
  }
  // An order that expires leaves the list: the user is told why, once
  // (the user channel's seq only grows).
  if (message.type === 'ORDER_UPDATED' && message.status === 'expired' && current) {
    const key = `bidask.expired.${current.user.id}`;
    if (message.seq > toasted.get(key)) {
      toasted.set(key, message.seq);
      expiryToast(message);
    }
  }
  if (page) page.refreshOrders();
}

/**
 * "Your bid for Air Jordan 1 Chicago (size 9) at $1.00 expired." The event
 * names the product by id: its name is this page's, or read. The price is
 * known while the page lists the order, which it still does until the
 * refresh the event causes; an order of another product, or one that
 * expired while the user was away, is told without it.
 */
async function expiryToast(message) {
  const listed = page && page.orders.find((order) => order.id === message.order_id);
  let name = page && page.product.id === message.product_id ? page.product.name : null;
  // Told without the name rather than not at all.
  if (!name) name = await productName(message.product_id);
  const what = name ? `${message.side} for ${name}` : message.side;
  const at = listed ? ` at ${money(listed.price)}` : '';
  toast(`Your ${what} (size ${message.size})${at} expired.`);
}

// Product names by id, each read once however many of its orders expire
// together (a resume after a week away can bring hundreds); a failed read
// is forgotten, so that a later expiry tries again.
const productNames = new Map();

function productName(id) {
  if (!productNames.has(id)) {
    const name = api('GET', `/products/${id}`).then(
      (product) => product.name,
      () => {
        productNames.delete(id);
        return null;
      },
    );
    productNames.set(id, name);
  }
  return productNames.get(id);
}

// The last notification (or expiry) toasted per user: in the tab's
// session storage, or in memory where the browser refuses storage (then
// once per page).
const toasted = {
  memory: new Map(),
  get(key) {
    let stored = 0;
    try {
      stored = Number(sessionStorage.getItem(key) || 0);
    } catch {
      // Nothing readable stored.
    }
    return Math.max(stored, this.memory.get(key) || 0);
  },
  set(key, id) {
    this.memory.set(key, id);
    try {
      sessionStorage.setItem(key, String(id));
    } catch {
      // Kept in memory only.
    }
  },
};

// ---- a product -------------------------------------------------------------

/** The ten newest of two lists of sales, each sale once (match ids only grow). */
function recentSales(some, others) {
  const byId = new Map([...others, ...some].map((sale) => [sale.id, sale]));
  return [...byId.values()].sort((a, b) => b.id - a.id).slice(0, 10);
}

/**
 * An example price near $210 on the product's tick, and the tick itself
 * when it is coarser than the last decimal ("Price in steps of 5.00, e.g.
 * 210.00"): the server refuses a price off the tick. Counted in units of
 * the tick's last decimal, as integers.
 */
function pricePlaceholder(tick) {
  const decimals = (tick.split('.')[1] || '').length;
  const units = Number(tick.replace('.', ''));
  const example = Math.max(1, Math.round((210 * 10 ** decimals) / units)) * units;
  const digits = String(example).padStart(decimals + 1, '0');
  const shown = decimals ? `${digits.slice(0, -decimals)}.${digits.slice(-decimals)}` : digits;
  return units === 1 ? `Price, e.g. ${shown}` : `Price in steps of ${tick}, e.g. ${shown}`;
}

/** How many levels a side the page shows. */
const BOOK_SHOWN = 10;

/** One market's book as the feed describes it: price → {quantity, orders}. */
class Market {
  constructor(size) {
    this.size = size;
    this.bids = new Map();
    this.asks = new Map();
    // The best of each side as the feed last said: each update names it,
    // so the page shows the server's word for it rather than its own
    // reckoning from the copy above.
    this.top = { bid: null, ask: null };
    this.lastSale = null;
    // Each side's levels in order, kept until the side changes: every
    // event of the product redraws, and a deep book is many levels to
    // sort for the ten shown.
    this.sorted = { bid: null, ask: null };
  }

  load(levels, side) {
    const book = side === 'bid' ? this.bids : this.asks;
    book.clear();
    this.sorted[side] = null;
    for (const level of levels) book.set(level.price, level);
    this.top[side] = levels.length ? { price: levels[0].price, quantity: levels[0].quantity } : null;
  }

  /** Applies a BID_UPDATED or ASK_UPDATED. */
  set(side, update) {
    const book = side === 'bid' ? this.bids : this.asks;
    this.sorted[side] = null;
    if (update.quantity === 0) book.delete(update.price);
    else book.set(update.price, { price: update.price, quantity: update.quantity, orders: update.orders });
    this.top[side] = (side === 'bid' ? update.highest_bid : update.lowest_ask) || null;
  }

  /** The side's levels, best first; not to be changed by the caller. */
  levels(side) {
    if (!this.sorted[side]) {
      const levels = [...(side === 'bid' ? this.bids : this.asks).values()];
      levels.sort((a, b) => (side === 'bid' ? Number(b.price) - Number(a.price) : Number(a.price) - Number(b.price)));
      this.sorted[side] = levels;
    }
    return this.sorted[side];
  }

  best(side) {
    return this.top[side];
  }
}

class ProductPage {
  constructor(main, product) {
    this.main = main;
    this.product = product;
    this.markets = new Map(product.sizes.map((size) => [size, new Market(size)]));
    this.selected = product.sizes[Math.floor(product.sizes.length / 2)] || product.sizes[0];
    this.matches = [];
    this.orders = [];
    this.cancelling = new Set();
    this.placing = false;
    // The last order that failed without an answer, and its key.
    this.retry = null;
    this.refreshing = false;
    this.refreshAgain = false;
    this.drawing = false;
    // The elements, built on the first drawing, and what each list was
    // last drawn from: a list is drawn again only when it was replaced.
    this.view = null;
    this.drawn = {};
    this.shown = { ask: null, bid: null };
    for (const market of product.markets) {
      const book = this.markets.get(market.size);
      if (book) book.lastSale = market.last_sale;
    }
  }

  snapshot(snapshot, reset) {
    // After a reset the sales in between were never seen here.
    if (reset) this.loadSales();
    for (const market of snapshot.markets) {
      const book = this.markets.get(market.size);
      if (!book) continue;
      book.load(market.bids, 'bid');
      book.load(market.asks, 'ask');
      book.lastSale = market.last_sale;
    }
    this.render();
  }

  event(message) {
    const book = this.markets.get(message.size);
    if (!book) return;
    if (message.type === 'BID_UPDATED') book.set('bid', message);
    if (message.type === 'ASK_UPDATED') book.set('ask', message);
    if (message.type === 'MATCH_CREATED') {
      book.lastSale = message.price;
      if (message.size === this.selected) {
        const sale = { id: message.match_id, price: message.price, quantity: message.quantity, created_at: message.ts };
        this.matches = recentSales([sale], this.matches);
      }
    }
    this.render();
  }

  async select(size) {
    this.selected = size;
    // Not the last size's sales under this size's heading meanwhile.
    this.matches = [];
    this.render();
    await this.loadSales();
  }

  /**
   * Reads the chosen size's recent sales. A read that fails (offline, a
   * 429, a 503) is tried again while that size is still shown, rather
   * than leave its list empty until the next reload: 5 s later, then
   * twice as long each time up to a minute, or later if the server says.
   */
  async loadSales(wait = 5000) {
    const size = this.selected;
    clearTimeout(this.salesRetry);
    try {
      await this.loadMatches();
    } catch (failure) {
      const told = failure instanceof ApiError ? failure.retryAfter * 1000 : 0;
      this.salesRetry = setTimeout(() => {
        if (this.selected === size) this.loadSales(Math.min(wait * 2, 60000));
      }, Math.max(wait, told));
    }
  }

  /**
   * The feed is up again, or for the first time. Orders placed or ended
   * meanwhile by the user elsewhere (another device, the API) raise no
   * event of their own on the page: it reads them again.
   */
  live() {
    if (this.wasLive) this.refreshOrders();
    this.wasLive = true;
  }

  async loadMatches() {
    const size = this.selected;
    const page = await api('GET', `/products/${this.product.id}/matches?size=${encodeURIComponent(size)}&limit=10`);
    if (size === this.selected) {
      // Sales the feed brought while this was read stay; one it brought
      // that the read also holds is listed once.
      this.matches = recentSales(page.items, this.matches);
      this.render();
    }
  }

  /** Signed in or out: what the last user was told is not for the next. */
  accountChanged() {
    this.error = '';
    this.retry = null;
    this.refreshOrders();
  }

  // One refresh at a time, and one more after it if any was asked for
  // meanwhile: a burst of private events costs two reads, not one each,
  // and an older answer can never land after a newer one.
  async refreshOrders() {
    if (this.refreshing) {
      this.refreshAgain = true;
      return;
    }
    this.refreshing = true;
    try {
      if (!current) {
        this.orders = [];
      } else {
        // Resting orders by status, so that finished ones do not crowd
        // them out of a page of 100.
        const asked = current;
        const pages = await Promise.all(['open', 'partially_filled'].map((status) =>
          api('GET', `/orders?product_id=${this.product.id}&status=${status}&limit=100`)));
        // Another user signed in meanwhile: these are not theirs, and the
        // refresh their sign-in asked for follows.
        if (current !== asked) return;
        this.orders = pages.flatMap((page) => page.items).sort((a, b) => b.id - a.id);
      }
      this.render();
    } catch {
      // Keep what is shown: a 429 or a 503 says nothing about the orders.
    } finally {
      this.refreshing = false;
      if (this.refreshAgain) {
        this.refreshAgain = false;
        this.refreshOrders();
      }
    }
  }

  // `timeInForce` is 'ioc' for Buy Now and Sell Now: trade at that price
  // now or not at all, never a bid left resting when the ask went first.
  async place(side, price, timeInForce) {
    // One order at a time, and none for a moment after one: a double
    // click must not place two, even when the first is answered between
    // its clicks.
    if (this.placing || this.cooling) return;
    this.placing = true;
    // The button is disabled while the order is out, which takes the
    // focus from it: it gets it back when it is enabled again.
    this.refocus = document.activeElement instanceof HTMLButtonElement ? document.activeElement : null;
    this.error = '';
    this.render();
    // A phone's decimal keypad may offer a comma: 210,50 is 210.50. But
    // 1,000 is a thousand, not one: a comma is a decimal point only when
    // no more digits follow it than the product's tick has decimals, and
    // any other is refused here rather than guessed at.
    if (price.includes(',')) {
      const decimals = (this.product.tick_size.split('.')[1] || '').length;
      if (decimals === 0 || !new RegExp(`^\\d+,\\d{1,${decimals}}$`).test(price)) {
        this.error = 'Write the price without a thousands separator, e.g. 1000.00.';
        this.placing = false;
        this.render();
        return;
      }
      price = price.replace(',', '.');
    }
    const order = { product_id: this.product.id, size: this.selected, price };
    if (timeInForce) order.time_in_force = timeInForce;
    // An order that failed for want of an answer (a 5xx, a timeout) may
    // still have been placed: sending the same order again reuses its
    // Idempotency-Key, so the server answers with the first one instead
    // of placing a second.
    const signature = JSON.stringify([side, order]);
    const key = this.retry && this.retry.signature === signature ? this.retry.key : newKey();
    this.retry = null;
    try {
      const reply = await api('POST', side === 'bid' ? '/bids' : '/asks', order, { 'Idempotency-Key': key });
      // A match is announced by the feed's private MATCH_CREATED, which
      // also reaches the user's other pages.
      if (reply.order.cancel_reason === 'self_trade') {
        this.error = reply.matches.length
          ? 'Partly filled; the rest would have traded with your own order.'
          : 'Not placed: it would have traded with your own order.';
      } else if (reply.matches.length === 0) {
        if (timeInForce === 'ioc') {
          this.error = 'Nothing was left at that price.';
        } else {
          toast(`${side === 'bid' ? 'Bid' : 'Ask'} placed at ${money(reply.order.price)}`);
        }
      }
      this.placing = false;
      this.cooling = true;
      setTimeout(() => {
        this.cooling = false;
        this.render();
      }, PLACED_PAUSE_MS);
      tabs.tell();
      // Now: the refresh may be skipped (one is running) or refused, and
      // the buttons and the message must not wait for it.
      this.render();
      await this.refreshOrders();
    } catch (failure) {
      if (!(failure instanceof ApiError) || failure.status >= 500) this.retry = { signature, key };
      this.placing = false;
      if (!sessionEnded(failure)) this.error = failure.message;
      this.render();
    }
  }

  // One cancel per order: the second click of a double click would be
  // answered "already cancelled". Its button is drawn disabled from then
  // on, also by a refresh that lists the order again before it has gone;
  // a refused cancel gives it back.
  async cancel(id) {
    if (this.cancelling.has(id)) return;
    this.cancelling.add(id);
    this.drawn.orders = null;
    this.render();
    try {
      await api('DELETE', `/orders/${id}`);
      tabs.tell();
    } catch (failure) {
      this.cancelling.delete(id);
      this.drawn.orders = null;
      if (!sessionEnded(failure)) this.error = failure.message;
    }
    // The list is drawn anew, and the button that had the focus with it:
    // the focus stays in the list, not back at the top of the page.
    this.refocusOrders = true;
    this.render();
    await this.refreshOrders();
  }

  // At most one drawing a frame: a resume replays events one by one,
  // and each would otherwise draw the page again.
  render() {
    if (this.drawing) return;
    this.drawing = true;
    requestAnimationFrame(() => {
      this.drawing = false;
      this.draw();
    });
  }

  /**
   * Builds the page's elements once; each drawing then changes their text
   * and state in place. A busy market draws many times a second, and an
   * element replaced between a press and its release loses the click, the
   * focus and what was being typed.
   */
  build() {
    const product = this.product;
    const cell = (attributes) => h('td', attributes);
    const sizes = new Map(product.sizes.map((size) => {
      const cells = {
        bid: cell({ class: 'bid', 'data-testid': `highest-bid-${size}` }),
        ask: cell({ class: 'ask', 'data-testid': `lowest-ask-${size}` }),
        last: cell({ 'data-testid': `last-sale-${size}` }),
      };
      // The whole row is a target for a finger; the button in it makes the
      // choice reachable by keyboard and says which size is chosen.
      cells.pick = h('button', { type: 'button', class: 'size-pick', 'aria-pressed': 'false',
        'aria-label': `Size ${size}`, 'data-testid': `size-${size}` }, size);
      cells.row = h('tr', { class: 'size', onclick: () => this.select(size) },
        h('td', {}, cells.pick), cells.bid, cells.ask, cells.last);
      return [size, cells];
    }));
    const price = h('input', { name: 'price', inputmode: 'decimal', placeholder: pricePlaceholder(product.tick_size),
      'aria-label': 'Price', 'data-testid': 'price' });
    const view = {
      sizes,
      price,
      bookTitle: h('h2'),
      bids: h('table'),
      asks: h('table'),
      salesTitle: h('h2'),
      matches: h('table', { 'data-testid': 'matches' }),
      tradeTitle: h('h2'),
      bid: h('button', { name: 'bid', type: 'button', class: 'buy',
        onclick: () => this.place('bid', price.value.trim()) }, 'Place bid'),
      ask: h('button', { name: 'ask', type: 'button', class: 'sell',
        onclick: () => this.place('ask', price.value.trim()) }, 'Place ask'),
      // At the price the button shows, which is what the user agreed to.
      buyNow: h('button', { type: 'button', class: 'secondary', 'data-testid': 'buy-now',
        onclick: () => this.shown.ask && this.place('bid', this.shown.ask, 'ioc') }),
      sellNow: h('button', { type: 'button', class: 'secondary', 'data-testid': 'sell-now',
        onclick: () => this.shown.bid && this.place('ask', this.shown.bid, 'ioc') }),
      error: h('p', { class: 'error', role: 'alert', 'data-testid': 'trade-error' }),
      orders: h('div', { class: 'card', tabindex: '-1', 'aria-label': 'Your open orders' }),
    };
    // No submit button: Enter in the price box must not pick a side for
    // the user (it would always be the first button's).
    const trade = h('form', { class: 'trade', 'data-testid': 'trade', onsubmit: (event) => event.preventDefault() },
      h('div', { class: 'row' }, price),
      h('div', { class: 'row' }, view.bid, view.ask),
      h('div', { class: 'row' }, view.buyNow, view.sellNow),
      view.error);
    this.main.replaceChildren(
      h('div', { class: 'muted' }, `${product.brand} · ${product.sku}`),
      h('h1', { 'data-testid': 'product-name' }, product.name),
      // Each panel is a title and its card; a phone reorders them (see
      // style.css), so each is one element.
      h('div', { class: 'grid' },
        h('section', {},
          h('div', { class: 'panel markets' },
            h('h2', {}, 'Markets'),
            h('div', { class: 'card' }, h('table', { 'data-testid': 'markets' },
              h('tr', {}, h('th', {}, 'Size'), h('th', {}, 'Highest bid'), h('th', {}, 'Lowest ask'), h('th', {}, 'Last sale')),
              [...sizes.values()].map((cells) => cells.row)))),
          h('div', { class: 'panel depth' },
            view.bookTitle,
            h('div', { class: 'card book', 'data-testid': 'book' }, view.bids, view.asks)),
          h('div', { class: 'panel sales' },
            view.salesTitle,
            h('div', { class: 'card' }, view.matches))),
        h('section', {},
          h('div', { class: 'panel trading' },
            view.tradeTitle,
            h('div', { class: 'card' }, trade)),
          h('div', { class: 'panel mine' },
            h('h2', {}, 'Your open orders'),
            view.orders))),
    );
    return view;
  }

  draw() {
    if (!this.view) this.view = this.build();
    const view = this.view;
    for (const [size, cells] of view.sizes) {
      const market = this.markets.get(size);
      const bid = market.best('bid');
      const ask = market.best('ask');
      cells.row.classList.toggle('selected', size === this.selected);
      cells.pick.setAttribute('aria-pressed', String(size === this.selected));
      setText(cells.bid, money(bid && bid.price));
      setText(cells.ask, money(ask && ask.price));
      setText(cells.last, money(market.lastSale));
    }
    const selected = this.markets.get(this.selected);
    setText(view.bookTitle, `Book · size ${this.selected}`);
    setText(view.salesTitle, `Recent sales · size ${this.selected}`);
    setText(view.tradeTitle, `Trade · size ${this.selected}`);
    for (const side of ['bid', 'ask']) {
      // The page knows the whole book (a snapshot holds every level), and
      // says how much of it is not shown.
      const all = selected.levels(side);
      const levels = all.slice(0, BOOK_SHOWN);
      const more = all.length - levels.length;
      const moreText = more > 0 ? `${more} more price ${more === 1 ? 'level' : 'levels'}` : '';
      const table = side === 'bid' ? view.bids : view.asks;
      const drawn = JSON.stringify([levels, moreText]);
      if (this.drawn[side] === drawn) continue;
      this.drawn[side] = drawn;
      table.replaceChildren(
        h('tr', {}, h('th', {}, side === 'bid' ? 'Bids' : 'Asks'), h('th', {}, 'Qty'), h('th', {}, 'Orders')),
        ...levels.map((level) => h('tr', {},
          h('td', { class: side }, money(level.price)), h('td', {}, level.quantity), h('td', {}, level.orders))),
        ...(moreText ? [h('tr', {}, h('td', { class: 'muted', colspan: '3', 'data-testid': `more-${side}s` }, moreText))] : []));
    }
    if (this.drawn.matches !== this.matches) {
      this.drawn.matches = this.matches;
      view.matches.replaceChildren(
        h('tr', {}, h('th', {}, 'Sale'), h('th', {}, 'Qty'), h('th', {}, 'When')),
        ...this.matches.map((match) => h('tr', {},
          h('td', {}, money(match.price)), h('td', {}, match.quantity),
          h('td', { class: 'muted' }, new Date(match.created_at).toLocaleTimeString()))));
    }
    const bestAsk = selected.best('ask');
    const bestBid = selected.best('bid');
    this.shown = { ask: bestAsk && bestAsk.price, bid: bestBid && bestBid.price };
    const signedIn = Boolean(current);
    const idle = signedIn && !this.placing && !this.cooling;
    view.bid.disabled = !idle;
    view.ask.disabled = !idle;
    view.buyNow.disabled = !idle || !bestAsk;
    view.sellNow.disabled = !idle || !bestBid;
    setText(view.buyNow, bestAsk ? `Buy Now ${money(bestAsk.price)}` : 'Buy Now');
    setText(view.sellNow, bestBid ? `Sell Now ${money(bestBid.price)}` : 'Sell Now');
    setText(view.error, this.error || (signedIn ? '' : 'Sign in to trade.'));
    if (this.refocus && !this.refocus.disabled) {
      if (document.activeElement === document.body) this.refocus.focus();
      this.refocus = null;
    }
    if (this.drawn.orders !== this.orders || this.drawn.signedIn !== signedIn) {
      this.drawn.orders = this.orders;
      this.drawn.signedIn = signedIn;
      view.orders.replaceChildren(!signedIn
        ? h('p', { class: 'muted' }, 'Sign in to see your orders.')
        : this.orders.length
          ? h('ul', { class: 'orders', 'data-testid': 'my-orders' },
            this.orders.map((order) => h('li', { 'data-testid': `order-${order.id}` },
              h('span', { class: order.side }, `${order.side === 'bid' ? 'Bid' : 'Ask'} size ${order.size} ${money(order.price)}`
                + (order.quantity > 1 ? ` · ${order.remaining_quantity} of ${order.quantity} left` : '')),
              h('button', { class: 'secondary', onclick: () => this.cancel(order.id), disabled: this.cancelling.has(order.id),
                'aria-label': `Cancel ${order.side} size ${order.size} at ${money(order.price)}` }, 'Cancel'))))
          : h('p', { class: 'muted', 'data-testid': 'my-orders' }, 'None.'));
      if (this.refocusOrders && document.activeElement === document.body) view.orders.focus();
      this.refocusOrders = false;
    }
  }
}

async function showProduct(main, id) {
  const product = await api('GET', `/products/${id}`);
  document.title = `${product.name} · bidask`;
  page = new ProductPage(main, product);
  page.render();
  feed = new Feed(product.id, {
    snapshot: (snapshot, reset) => page.snapshot(snapshot, reset),
    event: (message) => page.event(message),
    private: (message) => privateEvent(message),
    live: () => page.live(),
  });
  feed.connect();
  // Recent sales that could not be read (a 429, a 503) leave their list
  // empty for a moment, not the whole page replaced by an error: the page
  // draws into the elements it built, and the feed goes on.
  await Promise.all([page.loadSales(), page.refreshOrders()]);
}

// ---- start -----------------------------------------------------------------

/** A product address that names none (the server answered it 404). */
function showNotFound(main) {
  document.title = 'Not found · bidask';
  main.replaceChildren(
    h('h1', { 'data-testid': 'not-found' }, 'No such sneaker'),
    h('p', {}, h('a', { href: '/' }, 'See all sneakers')));
}

async function start() {
  renderAccount();
  const main = document.getElementById('main');
  const match = location.pathname.match(/^\/products\/(\d+)$/);
  try {
    if (match) await showProduct(main, match[1]);
    else if (location.pathname === '/') await showCatalog(main);
    else showNotFound(main);
  } catch (failure) {
    if (failure instanceof ApiError && failure.status === 404) showNotFound(main);
    else main.replaceChildren(h('p', { class: 'error' }, `Could not load: ${failure.message}`));
  }
}

// Signed in or out in another tab: this one follows, rather than go on
// showing one user's orders while acting with another's token.
window.addEventListener('storage', (event) => {
  if (event.key === TOKEN_KEY) location.reload();
});

// An order placed or cancelled in another tab of this browser raises no
// event on this one's feed (only fills, cancels and expiries do): the tab
// that did it says so here, and the others read their orders again. A
// page coming back into view reads them too, for what another device did.
const tabs = {
  channel: 'BroadcastChannel' in window ? new BroadcastChannel('bidask.orders') : null,
  tell() {
    if (this.channel && current) this.channel.postMessage({ user: current.user.id });
  },
};
if (tabs.channel) {
  tabs.channel.onmessage = (event) => {
    if (page && current && event.data && event.data.user === current.user.id) page.refreshOrders();
  };
}
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && page) page.refreshOrders();
});

start();
