// A real, independent ActivityPub server built with Fedify, for fedblog's interop test.
//
//   NODE_EXTRA_CA_CERTS=ca.pem PEER_CERT=fedify.crt PEER_KEY=fedify.key node peer.mjs
//
// Serves https://$PEER_HOST (default fedify.test) on $PEER_ADDR:$PEER_PORT (127.0.0.3:443) with one
// actor, acct:alice@fedify.test (Person, RSA + Ed25519 keys). Its inboxes record every activity
// that Fedify accepted (Fedify only calls inbox listeners for activities whose signature it
// verified; signature verification is left ON) and every one it rejected as unverified.
//
// Control API (not ActivityPub, for the test driver only):
//   POST /_control/follow?handle=@blog@blog.test   WebFinger + signed actor fetch, then Follow
//   POST /_control/unfollow?handle=@blog@blog.test Undo the last Follow of that actor
//   GET  /_control/received                        JSON: activities, unverified, errors, inbox requests
//   GET  /_control/replies?url=<object id>         JSON: the object's `replies` collection as Fedify
//                                                  reads it (signed GETs, every page, every item fetched)
//
// Fedify's own logs (LogTape, category "fedify", level $PEER_LOG_LEVEL, default debug) go to stderr.
// Prints "ready <url>" on stdout once listening.

import { AsyncLocalStorage } from "node:async_hooks";
import { readFileSync } from "node:fs";
import https from "node:https";
import { randomUUID } from "node:crypto";
import { configure, getTextFormatter } from "@logtape/logtape";
import {
  createFederation,
  generateCryptoKeyPair,
  MemoryKvStore,
  verifyRequestDetailed,
} from "@fedify/fedify";
import {
  Accept,
  Activity,
  Create,
  Delete,
  Endpoints,
  Follow,
  isActor,
  Person,
  Undo,
  Update,
} from "@fedify/vocab";

const HOST = process.env.PEER_HOST ?? "fedify.test";
const ADDR = process.env.PEER_ADDR ?? "127.0.0.3";
const PORT = Number(process.env.PEER_PORT ?? "443");
const ORIGIN = PORT === 443 ? `https://${HOST}` : `https://${HOST}:${PORT}`;
const USER = "alice";
const BODY_LIMIT = 20_000; // characters of each recorded inbox request body

const formatter = getTextFormatter({ timestamp: "date-time" });
await configure({
  contextLocalStorage: new AsyncLocalStorage(),
  sinks: { stderr: (record) => process.stderr.write(formatter(record)) },
  loggers: [
    { category: "fedify", lowestLevel: process.env.PEER_LOG_LEVEL ?? "debug", sinks: ["stderr"] },
    { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
  ],
});

// ---------------------------------------------------------------- what the test reads back
const received = { activities: [], unverified: [], errors: [], inboxRequests: [], sent: [] };

const href = (u) => (u == null ? null : u.href ?? String(u));

// JSON-safe copy of Fedify's failure reasons (they hold URLs, Errors and Responses).
const plain = (value) =>
  JSON.parse(
    JSON.stringify(value, (_k, v) => {
      if (v instanceof URL) return v.href;
      if (v instanceof Error) return `${v.name}: ${v.message}`;
      if (v instanceof Response) return { status: v.status, url: v.url };
      return v;
    }) ?? "null",
  );

async function describeObject(obj) {
  if (obj == null) return null;
  const json = await obj.toJsonLd().catch(() => null);
  return {
    type: json?.type ?? obj.constructor?.name ?? null,
    id: href(obj.id),
    name: obj.name == null ? null : String(obj.name),
    url: href(obj.url),
    content: obj.content == null ? null : String(obj.content),
    summary: obj.summary == null ? null : String(obj.summary),
    published: obj.published?.toString() ?? null,
    updated: obj.updated?.toString() ?? null,
    attributedTo: href(obj.attributionId),
    to: obj.toIds?.map(href) ?? [],
    cc: obj.ccIds?.map(href) ?? [],
    json,
  };
}

async function recordActivity(ctx, activity) {
  const entry = {
    // Fedify calls inbox listeners only after the request's HTTP signature (or an LD signature /
    // object integrity proof) verified with a key owned by the activity's actor.
    verified: true,
    type: activity.constructor.name,
    id: href(activity.id),
    actor: href(activity.actorId),
    objectId: href(activity.objectId),
    recipient: ctx.recipient, // null = shared inbox
    object: null,
    objectError: null,
    json: await activity.toJsonLd().catch((e) => ({ error: String(e) })),
    at: new Date().toISOString(),
  };
  try {
    // The object as Fedify sees it (embedded and same-origin, or fetched from its id).
    const obj = await activity.getObject();
    entry.object = await describeObject(obj);
  } catch (e) {
    entry.objectError = String(e);
  }
  received.activities.push(entry);
}

// ---------------------------------------------------------------- the Fedify server
const rsa = await generateCryptoKeyPair("RSASSA-PKCS1-v1_5");
const ed = await generateCryptoKeyPair("Ed25519");

const federation = createFederation({
  kv: new MemoryKvStore(),
  origin: ORIGIN,
  allowPrivateAddress: true, // fedify.test and blog.test live on 127.0.0.x
  skipSignatureVerification: false, // the point of the test: verify what fedblog sends
});

federation
  .setActorDispatcher("/users/{identifier}", async (ctx, identifier) => {
    if (identifier !== USER) return null;
    const keys = await ctx.getActorKeyPairs(identifier);
    return new Person({
      id: ctx.getActorUri(identifier),
      preferredUsername: identifier,
      name: "Alice (Fedify peer)",
      summary: "An independent ActivityPub server used by fedblog's interop tests.",
      url: new URL("/", ctx.url),
      inbox: ctx.getInboxUri(identifier),
      endpoints: new Endpoints({ sharedInbox: ctx.getInboxUri() }),
      publicKey: keys[0].cryptographicKey,
      assertionMethods: keys.map((k) => k.multikey),
    });
  })
  .mapHandle((_ctx, username) => (username === USER ? USER : null))
  .setKeyPairsDispatcher(async (_ctx, identifier) => (identifier === USER ? [rsa, ed] : []));

federation
  .setInboxListeners("/users/{identifier}/inbox", "/inbox")
  .on(Accept, recordActivity)
  .on(Create, recordActivity)
  .on(Update, recordActivity)
  .on(Delete, recordActivity)
  .on(Undo, recordActivity)
  .on(Follow, recordActivity)
  .on(Activity, recordActivity) // anything else (Announce, Like, Reject, ...), recorded as such
  .onUnverifiedActivity(async (_ctx, activity, reason) => {
    received.unverified.push({
      type: activity.constructor.name,
      id: href(activity.id),
      actor: href(activity.actorId),
      reason: plain(reason),
      at: new Date().toISOString(),
    });
    // returning nothing keeps Fedify's 401
  })
  .onError(async (_ctx, error) => {
    received.errors.push({ where: "inbox", error: String(error), stack: error?.stack ?? null });
  });

// ---------------------------------------------------------------- control API
const json = (status, body) =>
  new Response(JSON.stringify(body, null, 2), {
    status,
    headers: { "content-type": "application/json" },
  });

const follows = new Map(); // remote actor id -> last Follow we sent

async function lookupActor(ctx, handle) {
  // A signed GET on behalf of alice, like Mastodon in secure mode or GoToSocial.
  const documentLoader = await ctx.getDocumentLoader({ identifier: USER });
  const actor = await ctx.lookupObject(handle, { documentLoader });
  if (actor == null) throw new Error(`lookupObject(${handle}) found nothing (see the fedify log)`);
  if (!isActor(actor)) throw new Error(`lookupObject(${handle}) is a ${actor.constructor.name}, not an actor`);
  return actor;
}

async function control(request, url) {
  const ctx = federation.createContext(request, undefined);
  if (url.pathname === "/_control/received" && request.method === "GET") {
    return json(200, received);
  }
  if (url.pathname === "/_control/follow" && request.method === "POST") {
    const handle = url.searchParams.get("handle");
    if (!handle) return json(400, { error: "give ?handle=@user@host" });
    let actor;
    try {
      actor = await lookupActor(ctx, handle);
    } catch (e) {
      return json(502, { step: "lookup", error: String(e), stack: e?.stack ?? null });
    }
    const follow = new Follow({
      id: new URL(`/follows/${randomUUID()}`, ORIGIN),
      actor: ctx.getActorUri(USER),
      object: actor.id,
    });
    const out = {
      followId: href(follow.id),
      actorId: href(actor.id),
      preferredUsername: actor.preferredUsername == null ? null : String(actor.preferredUsername),
      inbox: href(actor.inboxId),
      sharedInbox: href(actor.endpoints?.sharedInbox),
      publicKeyIds: (await Array.fromAsync(actor.getPublicKeys())).map((k) => href(k.id)),
    };
    try {
      // No queue configured: this delivers now and throws if the inbox refuses it.
      await ctx.sendActivity({ identifier: USER }, actor, follow);
    } catch (e) {
      return json(502, { step: "send", ...out, error: String(e), stack: e?.stack ?? null });
    }
    follows.set(out.actorId, follow);
    received.sent.push({ type: "Follow", ...out, at: new Date().toISOString() });
    return json(200, out);
  }
  if (url.pathname === "/_control/unfollow" && request.method === "POST") {
    const handle = url.searchParams.get("handle");
    let actor;
    try {
      actor = await lookupActor(ctx, handle ?? "");
    } catch (e) {
      return json(502, { step: "lookup", error: String(e) });
    }
    const follow = follows.get(href(actor.id));
    if (follow == null) return json(409, { error: `not following ${href(actor.id)}` });
    const undo = new Undo({
      id: new URL(`/undos/${randomUUID()}`, ORIGIN),
      actor: ctx.getActorUri(USER),
      object: follow,
    });
    try {
      await ctx.sendActivity({ identifier: USER }, actor, undo);
    } catch (e) {
      return json(502, { step: "send", error: String(e), stack: e?.stack ?? null });
    }
    follows.delete(href(actor.id));
    const out = { undoId: href(undo.id), followId: href(follow.id), actorId: href(actor.id) };
    received.sent.push({ type: "Undo", ...out, at: new Date().toISOString() });
    return json(200, out);
  }
  if (url.pathname === "/_control/replies" && request.method === "GET") {
    const target = url.searchParams.get("url");
    if (!target) return json(400, { error: "give ?url=<object id>" });
    try {
      const documentLoader = await ctx.getDocumentLoader({ identifier: USER });
      const obj = await ctx.lookupObject(target, { documentLoader });
      if (obj == null) return json(404, { error: `lookupObject(${target}) found nothing (see the fedify log)` });
      const replies = await obj.getReplies({ documentLoader });
      if (replies == null) return json(404, { error: `${target} has no replies collection` });
      const items = [];
      for await (const item of ctx.traverseCollection(replies, { documentLoader })) {
        // an item given by id only is a Link here: fetch it as a reader's server would
        const full = item.constructor.name === "Link" || item.content === undefined
          ? await ctx.lookupObject(href(item.href ?? item.id), { documentLoader })
          : item;
        items.push(await describeObject(full));
      }
      return json(200, { id: href(obj.id), repliesId: href(replies.id), totalItems: replies.totalItems ?? null, items });
    } catch (e) {
      return json(502, { error: String(e), stack: e?.stack ?? null });
    }
  }
  return json(404, { error: `no control endpoint ${request.method} ${url.pathname}` });
}

// ---------------------------------------------------------------- node:https <-> fetch API
function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

async function checkHttpSignature(request, spec) {
  if (spec === "none") return { verified: false, reason: { type: "noSignature" } };
  try {
    const ctx = federation.createContext(request, undefined);
    const result = await verifyRequestDetailed(request, {
      documentLoader: ctx.documentLoader,
      contextLoader: ctx.contextLoader,
      spec,
    });
    if (result.verified) {
      return { verified: true, keyId: href(result.key.id), owner: href(result.key.ownerId) };
    }
    return { verified: false, reason: plain(result.reason) };
  } catch (e) {
    return { verified: false, error: String(e) };
  }
}

const SIG_HEADERS = ["signature", "signature-input", "digest", "content-digest", "date", "host", "content-type", "user-agent"];

async function handle(req, res) {
  const body = await readBody(req);
  const url = new URL(req.url, `https://${req.headers.host ?? HOST}`);
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else if (value != null) headers.set(name, value);
  }
  const hasBody = !["GET", "HEAD"].includes(req.method) && body.length > 0;
  const request = new Request(url, { method: req.method, headers, body: hasBody ? body : undefined });

  const isInbox = req.method === "POST" && (url.pathname === "/inbox" || url.pathname.endsWith("/inbox"));
  const spec = headers.has("signature-input") ? "rfc9421" : headers.has("signature") ? "draft-cavage-http-signatures-12" : "none";
  const copy = isInbox ? request.clone() : null;

  let response;
  try {
    if (url.pathname.startsWith("/_control/")) {
      response = await control(request, url);
    } else {
      response = await federation.fetch(request, {
        contextData: undefined,
        onNotFound: () => new Response("Not found\n", { status: 404, headers: { "content-type": "text/plain" } }),
        onNotAcceptable: () => new Response("Not acceptable\n", { status: 406, headers: { "content-type": "text/plain" } }),
      });
    }
  } catch (e) {
    received.errors.push({ where: `${req.method} ${url.pathname}`, error: String(e), stack: e?.stack ?? null });
    response = new Response(`Internal error: ${e}\n`, { status: 500 });
  }

  const respBody = Buffer.from(await response.arrayBuffer());
  if (isInbox) {
    received.inboxRequests.push({
      path: url.pathname,
      status: response.status,
      response: respBody.toString("utf8").slice(0, 2000),
      headers: Object.fromEntries(SIG_HEADERS.filter((h) => headers.has(h)).map((h) => [h, headers.get(h)])),
      signatureScheme: spec,
      // Fedify also accepts Linked Data signatures and integrity proofs; this says whether the
      // HTTP signature alone verifies (Fedify's verifyRequest, key fetched again, 1 h window).
      httpSignature: await checkHttpSignature(copy, spec),
      body: body.toString("utf8").slice(0, BODY_LIMIT),
      at: new Date().toISOString(),
    });
  }
  const outHeaders = {};
  response.headers.forEach((v, k) => {
    outHeaders[k] = k in outHeaders ? `${outHeaders[k]}, ${v}` : v;
  });
  res.writeHead(response.status, outHeaders);
  res.end(respBody);
}

const server = https.createServer(
  { cert: readFileSync(process.env.PEER_CERT), key: readFileSync(process.env.PEER_KEY) },
  (req, res) => {
    handle(req, res).catch((e) => {
      process.stderr.write(`peer: unhandled ${e?.stack ?? e}\n`);
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  },
);
server.listen(PORT, ADDR, () => {
  process.stdout.write(`ready ${ORIGIN} on ${ADDR}:${PORT}\n`);
});
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  });
}
