// The npm `chromadb` client's part of the client matrix (tests/python/matrix_chroma_clients.py).
// Reads one JSON request on stdin: {mode: "seed" | "scenario" | "foreign", url, token,
// collection, team, otherTeam, ownIds, otherIds, k, docs, embeddings, textEmbeddings} and
// prints a JSON answer on stdout: nothing for seed, the transcript ([step, value] pairs) for
// scenario, and for foreign the outcome of each attempt on the other department's records.
// Embeddings come from Python (the demo's hashing embedding); nothing downloads a model.

import { ChromaClient } from "chromadb";

const input = JSON.parse(await new Promise((resolve) => {
  let text = "";
  process.stdin.on("data", (chunk) => { text += chunk; });
  process.stdin.on("end", () => resolve(text));
}));

const url = new URL(input.url);
// The one line of configuration: the token as a header.
const client = new ChromaClient({
  host: url.hostname,
  port: Number(url.port),
  ssl: false,
  headers: input.token ? { Authorization: `Bearer ${input.token}` } : {},
});

// Collections are opened without an embedding function: every call passes its embeddings.
const open = () => client.getOrCreateCollection({ name: input.collection, embeddingFunction: null });
const view = (r) => ({ ids: r.ids, documents: r.documents, metadatas: r.metadatas });
const queryView = (r) => ({ ids: r.ids, distances: r.distances, documents: r.documents });
const [department, region] = input.team;
const meta = (topic) => ({ department, region, topic });
const q = [input.textEmbeddings[input.question]];

async function seed() {
  const col = await open();
  await col.add({
    ids: input.docs.map((d) => d[0]),
    documents: input.docs.map((d) => d[1]),
    metadatas: input.docs.map((d) => d[2]),
    embeddings: input.embeddings,
  });
  return null;
}

async function scenario() {
  const t = [];
  const note = (step, value) => t.push([step, value]);
  const col = await open();
  const own = input.ownIds;
  const k = input.k;
  note("count", await col.count());
  note("get", view(await col.get()));
  note("get by ids", view(await col.get({ ids: [own[0], input.otherIds[0], "no-such-id"] })));
  note("get page", view(await col.get({ limit: 1, offset: 1 })));
  note("get where", view(await col.get({ where: { topic: "budget" } })));
  note("peek", view(await col.peek({ limit: 1 })));
  note("query", queryView(await col.query({ queryEmbeddings: q, nResults: k })));
  note("query where", queryView(await col.query({
    queryEmbeddings: q, nResults: k, where: { $or: [{ topic: "budget" }, { topic: "reviews" }] },
  })));
  note("query ids", queryView(await col.query({ queryEmbeddings: q, nResults: k, ids: own })));
  const newId = `${department.toLowerCase()}-${region.toLowerCase()}-added-js`;
  await col.add({
    ids: [newId], documents: ["added from node"], metadatas: [meta("added")],
    embeddings: [input.textEmbeddings.changed],
  });
  note("after add", view(await col.get({ ids: [newId] })));
  await col.upsert({
    ids: [own[0]], documents: ["changed by upsert"], metadatas: [meta("upserted")],
    embeddings: [input.textEmbeddings.changed],
  });
  await col.update({ ids: [own[1]], metadatas: [{ topic: "updated" }] });
  note("after upsert and update", view(await col.get({ ids: own })));
  await col.delete({ ids: [own[1]] });
  await col.delete({ where: { topic: "upserted" } });
  note("after deletes", view(await col.get()));
  note("count at the end", await col.count());
  return t;
}

// Each attempt: "ok", or "error" with the error's class and message (the JS client replaces
// the server's error text with its own for some statuses).
async function attempt(f) {
  try {
    await f();
    return { outcome: "ok" };
  } catch (e) {
    return { outcome: "error", name: e?.name ?? String(e), message: String(e?.message ?? e) };
  }
}

async function foreign() {
  const col = await client.getCollection({ name: input.collection, embeddingFunction: null });
  const [odep, oreg] = input.otherTeam;
  const other = input.otherIds;
  return {
    add: await attempt(() => col.add({
      ids: ["planted-js"], documents: ["planted"], metadatas: [{ department: odep, region: oreg }],
      embeddings: [input.textEmbeddings.changed],
    })),
    upsert: await attempt(() => col.upsert({
      ids: [other[0]], documents: ["taken over"], metadatas: [meta("x")],
      embeddings: [input.textEmbeddings.changed],
    })),
    update: await attempt(() => col.update({ ids: [other[0]], metadatas: [{ topic: "vandalised" }] })),
    delete: await attempt(() => col.delete({ ids: other })),
  };
}

const modes = { seed, scenario, foreign };
const answer = await modes[input.mode]();
process.stdout.write(JSON.stringify(answer));
