// Local OpenID Provider for pam-oidc tests and the demo — TEST USE ONLY.
//
// A real, certified provider (npm oidc-provider) on 127.0.0.1 with RS256,
// ES256 and EdDSA keys generated at start (a restart rotates them). Tokens are
// issued through a real grant: CIBA in poll mode, auto-approved for the
// `login_hint` user. A few /test/* routes make tests scriptable:
//   GET  /test/token?client=ID&user=NAME[&acr=..&amr=a,b&pad=N] -> {"id_token": ...} (runs CIBA against itself;
//                                                          pad adds an N-byte claim, for big-token tests)
//   POST /test/sign {"header":{...},"payload":{...}}       -> {"token": ...} signed with this IdP's key for header.alg
//   GET  /test/stats                                       -> {"jwks_hits": N, "discovery_hits": N}
//   POST /test/logout?user=NAME[&client=ID]                 -> {"ok": true} once the provider's own
//        back-channel logout (Client#backchannelLogout, what end_session runs) got 200 from the
//        client's backchannel_logout_uri (--backchannel-logout-uri, on host-login); else {"error": ...}
//   GET  /test/device?user_code=C&user=NAME&action=approve|deny
//        completes a device-code login by driving the provider's own pages
//        (/device, the login and consent interactions) like a browser would
//   GET  /test/browse?url=AUTHORIZE_URL&user=NAME[&action=approve|deny]
//        a browser for the authorization code flow: follows the authorization request through
//        the provider's login and consent pages, then GETs the client's redirect (its loopback
//        callback) and returns what that page said; host-cli is a public native client
//        (authorization code + PKCE, refresh tokens with offline_access, any loopback port)
//   GET  /test/revoke?user=NAME                            -> {"revoked": N} destroys NAME's grants: their
//        refresh tokens then get invalid_grant (host-device issues them with offline_access;
//        its ID tokens live DEVICE_ID_TOKEN_TTL seconds, env, default 600)
//   GET  /test/ciba?user=NAME&action=approve|deny|none[&as=OTHER][&delay_ms=N][&slow=1]
//        what NAME's "phone" does with the next push logins (CIBA) for login_hint NAME: approve
//        (default, at once or after delay_ms), deny, or nothing (the request expires); `as`
//        approves as another account; `slow` answers slow_down to polls < 4 s apart.
//        Every CIBA response carries `interval: 1`.
//   GET  /test/ciba/requests?user=NAME                     -> the push logins asked for NAME:
//        [{client_id, login_hint, binding_message, scope, started_ms (epoch), polls: [ms since request], slow_downs}]
//   GET  /test/client-key                                  -> {"pem": PKCS#8} the private key of the
//        private_key_jwt clients (host-ciba-jwt, host-device-jwt), generated at start
//
// usage: node idp.mjs --port PORT [--host 127.0.0.1] [--backchannel-logout-uri URL]

import http from 'node:http';
import { parseArgs } from 'node:util';
import Provider from 'oidc-provider';
import * as jose from 'jose';
import { errors } from 'oidc-provider';

const { values: opts } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    'backchannel-logout-uri': { type: 'string' },
  },
});
if (!opts.port) {
  console.error('usage: node idp.mjs --port PORT');
  process.exit(2);
}
const issuer = `http://${opts.host}:${opts.port}`;

// Users of the test realm. Any other name logs in with no groups.
const USERS = {
  alice: ['devs', 'ops-admins'],
  bob: ['devs'],
  mallory: ['devs', 'contractors'],
  carol: [],
};
const groupsOf = (name) => USERS[name] ?? [];

const rand = () => Math.random().toString(36).slice(2, 8);
async function mkKey(alg, extra = {}) {
  const { privateKey } = await jose.generateKeyPair(alg, { extractable: true, ...extra });
  const jwk = await jose.exportJWK(privateKey);
  return { ...jwk, alg, use: 'sig', kid: `${alg.toLowerCase()}-${rand()}` };
}
const keys = [await mkKey('RS256'), await mkKey('ES256'), await mkKey('EdDSA', { crv: 'Ed25519' })];
// The private_key_jwt clients' key pair (the host holds the private half).
const clientKey = await jose.generateKeyPair('ES256', { extractable: true });
const clientJwk = { ...(await jose.exportJWK(clientKey.publicKey)), alg: 'ES256', use: 'sig', kid: 'client-1' };

const SECRET = 'test-secret-not-for-production';
const deviceTtl = Number(process.env.DEVICE_ID_TOKEN_TTL ?? 600);
// Grant ids by account, for /test/revoke.
const grantsOf = new Map();
const client = (id, alg) => ({
  client_id: id,
  client_secret: SECRET,
  grant_types: ['urn:openid:params:grant-type:ciba'],
  response_types: [],
  redirect_uris: [],
  token_endpoint_auth_method: 'client_secret_post',
  backchannel_token_delivery_mode: 'poll',
  id_token_signed_response_alg: alg,
  require_auth_time: true, // ID tokens say when the user authenticated (max_age= needs it)
  // Back-channel logout to helperd's receiver; CIBA grants have no browser
  // session, so no sid: logout tokens name the sub.
  ...(id === 'host-login' && opts['backchannel-logout-uri']
    ? { backchannel_logout_uri: opts['backchannel-logout-uri'], backchannel_logout_session_required: false }
    : {}),
});

const provider = new Provider(issuer, {
  clients: [
    client('host-login', 'RS256'),
    client('host-login-es', 'ES256'),
    client('host-login-ed', 'EdDSA'),
    client('other-app', 'RS256'),
    client('short-lived', 'RS256'),
    // Push login (CIBA) with private_key_jwt client authentication.
    { ...client('host-ciba-jwt', 'RS256'), client_secret: undefined, token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256', jwks: { keys: [clientJwk] } },
    // Device-code login (RFC 8628): a public client, as on a host.
    {
      client_id: 'host-device',
      token_endpoint_auth_method: 'none',
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
      response_types: [],
      redirect_uris: [],
      id_token_signed_response_alg: 'RS256',
      require_auth_time: true,
    },
    // Confidential device clients (Google's device flow needs one): a secret, or a key.
    { client_id: 'host-device-conf', client_secret: SECRET, token_endpoint_auth_method: 'client_secret_post',
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code'], response_types: [], redirect_uris: [],
      id_token_signed_response_alg: 'RS256', require_auth_time: true },
    { client_id: 'host-device-jwt', token_endpoint_auth_method: 'private_key_jwt', token_endpoint_auth_signing_alg: 'ES256',
      jwks: { keys: [clientJwk] }, grant_types: ['urn:ietf:params:oauth:grant-type:device_code'], response_types: [],
      redirect_uris: [], id_token_signed_response_alg: 'RS256', require_auth_time: true },
    // The people's client (pam-oidc login): a public native app, authorization code + PKCE
    // with a loopback redirect (any port: RFC 8252 §7.3), the device flow when headless.
    {
      client_id: 'host-cli',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
      id_token_signed_response_alg: 'RS256',
      require_auth_time: true,
    },
  ],
  jwks: { keys },
  // The provider refuses outgoing requests to special-use addresses (SSRF
  // protection); helperd's logout receiver here is on 127.0.0.1. Test only.
  fetch: (url, options) => {
    const { dispatcher, ...rest } = options;
    return globalThis.fetch(url, rest);
  },
  enabledJWA: { idTokenSigningAlgValues: ['RS256', 'ES256', 'EdDSA'] },
  conformIdTokenClaims: false,
  scopes: ['openid', 'offline_access', 'profile', 'groups'],
  claims: { openid: ['sub', 'x_uniq'], profile: ['preferred_username', 'name', 'x_pad'], groups: ['groups'] },
  ttl: {
    IdToken: (ctx, token, c) => (c?.clientId === 'short-lived' ? 1 : c?.clientId === 'host-device' ? deviceTtl : 600),
    BackchannelAuthenticationRequest: 60,
  },
  features: {
    // The provider's own development login/consent pages, driven by /test/device.
    devInteractions: { enabled: true },
    backchannelLogout: { enabled: true },
    deviceFlow: { enabled: true },
    ciba: {
      enabled: true,
      deliveryModes: ['poll'],
      // The phone's settings apply to logins that send a binding_message (helperd's);
      // /test/token sends none and is always approved as the hint.
      processLoginHint: async (ctx, hint) => `u-${(ctx.oidc.params.binding_message && phone.get(hint)?.as) || hint}`,
      validateRequestContext: async () => {},
      // Real IdPs show the message on the phone; this one takes host, service and address.
      validateBindingMessage: async (ctx, m) => {
        if (m !== undefined && !/^[\x20-\x7e]{1,128}$/.test(m)) throw new errors.InvalidBindingMessage('bad binding_message');
      },
      verifyUserCode: async () => {},
      triggerAuthenticationDevice: async (ctx, request, account, c) => {
        const hint = request.params.login_hint;
        const mode = (request.params.binding_message && phone.get(hint)) || { action: 'approve' };
        cibaRequests.set(request.jti, {
          hint, started: Date.now(), polls: [], slow_downs: 0, slow: !!mode.slow,
          seen: { client_id: c.clientId, login_hint: hint, binding_message: request.params.binding_message, scope: request.scope },
        });
        if (mode.action === 'none') return;
        if (mode.action === 'deny') {
          setTimeout(() => provider.backchannelResult(request.jti, new errors.AccessDenied('the user denied the login')).catch(() => {}), mode.delay_ms ?? 0);
          return;
        }
        // Approve: the "device" says yes, at once or after delay_ms.
        const grant = new ctx.oidc.provider.Grant({ clientId: c.clientId, accountId: account.accountId });
        grant.addOIDCScope(request.scope);
        await grant.save();
        const extra = pending.get(account.accountId.slice(2)) ?? {};
        const approve = () => ctx.oidc.provider.backchannelResult(request.jti, grant.jti, {
          authTime: Math.floor(Date.now() / 1000),
          acr: extra.acr,
          amr: extra.amr,
        });
        if (mode.delay_ms) setTimeout(() => approve().catch(() => {}), mode.delay_ms);
        else await approve();
      },
    },
  },
  // accountId (= sub) is `u-<name>`, so sub and login name differ as with real IdPs.
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => {
      const name = id.slice(2);
      const pad = pending.get(name)?.pad;
      // x_uniq: every token differs (pam-oidc lets each token log in once per host).
      return { sub: id, preferred_username: name, name, groups: groupsOf(name), x_uniq: `${Date.now()}-${rand()}`, ...(pad ? { x_pad: 'p'.repeat(pad) } : {}) };
    },
  }),
});
provider.on('server_error', (ctx, err) => console.error('idp server_error', err));
// CIBA responses say `interval: 1`; `slow` users' polls closer than 4 s get slow_down.
provider.use(async (ctx, next) => {
  await next();
  if (ctx.path === '/backchannel' && ctx.body?.auth_req_id) ctx.body = { ...ctx.body, interval: 1 };
  if (ctx.path === '/token' && ctx.body?.error === 'authorization_pending') {
    const r = cibaRequests.get(ctx.oidc?.params?.auth_req_id);
    if (!r) return;
    const now = Date.now();
    const last = r.polls.length ? r.started + r.polls[r.polls.length - 1] : r.started;
    r.polls.push(now - r.started);
    if (r.slow && now - last < 4000) {
      r.slow_downs++;
      ctx.body = { error: 'slow_down', error_description: 'you are polling too quickly' };
    }
  } else if (ctx.path === '/token') {
    const r = cibaRequests.get(ctx.oidc?.params?.auth_req_id);
    if (r) r.polls.push(Date.now() - r.started);
  }
});
provider.on('grant.saved', (g) => grantsOf.set(g.accountId, new Set([...(grantsOf.get(g.accountId) ?? []), g.jti])));
async function revoke(user) {
  let n = 0;
  for (const id of grantsOf.get(`u-${user}`) ?? []) {
    const g = await provider.Grant.find(id);
    if (g) await g.destroy(), n++;
  }
  grantsOf.delete(`u-${user}`);
  return { revoked: n };
}

const pending = new Map();
// CIBA: what each login_hint's phone does, and the requests seen (by auth_req_id).
const phone = new Map();
const cibaRequests = new Map();
const stats = { jwks_hits: 0, discovery_hits: 0 };
const json = (res, code, body) => {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};
const readBody = (req) =>
  new Promise((ok, fail) => {
    let b = '';
    req.on('data', (d) => (b += d));
    req.on('end', () => ok(b));
    req.on('error', fail);
  });

async function mint(q) {
  const user = q.get('user');
  const clientId = q.get('client') ?? 'host-login';
  pending.set(user, { acr: q.get('acr') ?? undefined, amr: q.get('amr')?.split(','), pad: Number(q.get('pad') ?? 0) });
  const form = (o) => new URLSearchParams({ client_id: clientId, client_secret: SECRET, ...o });
  let r = await fetch(`${issuer}/backchannel`, { method: 'POST', body: form({ scope: 'openid profile groups', login_hint: user }) });
  const auth = await r.json();
  if (!auth.auth_req_id) throw new Error(`backchannel: ${JSON.stringify(auth)}`);
  for (let i = 0; i < 50; i++) {
    r = await fetch(`${issuer}/token`, {
      method: 'POST',
      body: form({ grant_type: 'urn:openid:params:grant-type:ciba', auth_req_id: auth.auth_req_id }),
    });
    const t = await r.json();
    if (t.id_token) return { id_token: t.id_token };
    if (t.error !== 'authorization_pending' && t.error !== 'slow_down') throw new Error(`token: ${JSON.stringify(t)}`);
    await new Promise((ok) => setTimeout(ok, 100));
  }
  throw new Error('token: timed out');
}

async function sign(body) {
  const { header, payload } = JSON.parse(body);
  const key = keys.find((k) => k.alg === header.alg) ?? keys[0];
  const priv = await jose.importJWK(key, key.alg);
  const h = { kid: key.kid, ...header, alg: key.alg };
  const token = await new jose.CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader(h)
    .sign(priv);
  return { token };
}

// A browser, minimally: a cookie jar and manual redirects.
async function browse(start, action, user, userCode) {
  const jar = new Map();
  const cookie = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  const go = async (url, form) => {
    const r = await fetch(new URL(url, issuer), {
      method: form ? 'POST' : 'GET',
      redirect: 'manual',
      headers: { cookie: cookie(), ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
      body: form ? new URLSearchParams(form) : undefined,
    });
    for (const c of r.headers.getSetCookie()) {
      const [kv] = c.split(';');
      const i = kv.indexOf('=');
      jar.set(kv.slice(0, i), kv.slice(i + 1));
    }
    return { status: r.status, location: r.headers.get('location'), body: await r.text(), url };
  };
  const xsrf = (body) => body.match(/name="xsrf" value="([^"]+)"/)?.[1];
  let page = await go(start);
  if (userCode !== undefined) {
    page = await go('/device', { xsrf: xsrf(page.body), user_code: userCode });
    if (!/deviceConfirmForm/.test(page.body)) throw new Error(`no confirm page: ${page.body.slice(0, 300)}`);
    const confirm = { xsrf: xsrf(page.body), user_code: userCode, confirm: 'yes', ...(action === 'deny' ? { abort: 'yes' } : {}) };
    page = await go('/device', confirm);
  }
  for (let i = 0; i < 12; i++) {
    if (page.location) {
      page = await go(page.location);
      continue;
    }
    const m = page.url.toString().match(/\/interaction\/([^/?]+)$/);
    if (m && /name="prompt" value="login"/.test(page.body)) {
      page = await go(page.url, { prompt: 'login', login: `u-${user}`, password: 'any' });
    } else if (m && /name="prompt" value="consent"/.test(page.body)) {
      page = userCode === undefined && action === 'deny' ? await go(`${page.url}/abort`) : await go(page.url, { prompt: 'consent' });
    } else {
      return { status: page.status, done: true, page: page.body.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').slice(0, 200) };
    }
  }
  throw new Error('device flow: too many steps');
}

const callback = provider.callback();
const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, issuer);
  try {
    if (url.pathname === '/test/token') return json(res, 200, await mint(url.searchParams));
    if (url.pathname === '/test/sign' && req.method === 'POST') return json(res, 200, await sign(await readBody(req)));
    if (url.pathname === '/test/stats') return json(res, 200, stats);
    if (url.pathname === '/test/logout' && req.method === 'POST') {
      const c = await provider.Client.find(url.searchParams.get('client') ?? 'host-login');
      await c.backchannelLogout(`u-${url.searchParams.get('user')}`, undefined);
      return json(res, 200, { ok: true });
    }
    if (url.pathname === '/test/ciba') {
      const q = url.searchParams;
      const mode = { action: q.get('action') ?? 'approve', slow: q.get('slow') === '1' };
      if (q.get('as')) mode.as = q.get('as');
      if (q.get('delay_ms')) mode.delay_ms = Number(q.get('delay_ms'));
      phone.set(q.get('user'), mode);
      return json(res, 200, { ok: true });
    }
    if (url.pathname === '/test/ciba/requests') {
      const user = url.searchParams.get('user');
      const seen = [...cibaRequests.values()].filter((r) => r.hint === user);
      return json(res, 200, seen.map((r) => ({ ...r.seen, started_ms: r.started, polls: r.polls, slow_downs: r.slow_downs })));
    }
    if (url.pathname === '/test/client-key') return json(res, 200, { pem: await jose.exportPKCS8(clientKey.privateKey) });
    if (url.pathname === '/test/revoke') return json(res, 200, await revoke(url.searchParams.get('user')));
    if (url.pathname === '/test/device') {
      const q = url.searchParams;
      return json(res, 200, await browse('/device', q.get('action') ?? 'approve', q.get('user'), q.get('user_code')));
    }
    if (url.pathname === '/test/browse') {
      const q = url.searchParams;
      return json(res, 200, await browse(q.get('url'), q.get('action') ?? 'approve', q.get('user'), undefined));
    }
  } catch (e) {
    return json(res, 500, { error: String(e) });
  }
  if (url.pathname === '/jwks') stats.jwks_hits++;
  if (url.pathname === '/.well-known/openid-configuration') stats.discovery_hits++;
  return callback(req, res);
});
server.listen(Number(opts.port), opts.host, () => {
  console.log(`idp listening on ${issuer} kids=${keys.map((k) => k.kid).join(',')}`);
});
for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => process.exit(0));
