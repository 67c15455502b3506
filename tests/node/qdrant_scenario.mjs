// The npm `@qdrant/js-client-rest` client's part of the client matrix
// (tests/python/matrix_qdrant_clients.py). Reads one JSON request on stdin: {mode: "seed" |
// "scenario" | "foreign", url, token, collection, team, otherTeam, ownPoints, otherPoints,
// newPoint, plantedPoint, points, docs, embeddings, textEmbeddings, k, dimensions} and prints a
// JSON answer on stdout: nothing for seed, the transcript ([step, value] pairs) for scenario,
// and for foreign the outcome of each attempt on the other department's points.
// Payloads use LangChain's layout {page_content, metadata: {...}}; embeddings come from Python.

import { QdrantClient } from "@qdrant/js-client-rest";

const input = JSON.parse(await new Promise((resolve) => {
  let text = "";
  process.stdin.on("data", (chunk) => { text += chunk; });
  process.stdin.on("end", () => resolve(text));
}));

// The one line of configuration: the token as the API key (sent as `api-key`).
const client = new QdrantClient({ url: input.url, apiKey: input.token ?? undefined, checkCompatibility: false });
const c = input.collection;
const [department, region] = input.team;
const meta = (topic) => ({ department, region, topic });
const q = input.textEmbeddings[input.question];
const topicIs = (value) => ({ must: [{ key: "metadata.topic", match: { value } }] });
const points = (ps) => ps.map((p) => [String(p.id), p.payload ?? null]);
const hits = (ps) => ps.map((p) => [String(p.id), p.score]);

async function seed() {
  if (!(await client.collectionExists(c)).exists) {
    await client.createCollection(c, { vectors: { size: input.dimensions, distance: "Cosine" } });
  }
  await client.upsert(c, {
    wait: true,
    points: input.docs.map((d, i) => ({
      id: input.points[i], vector: input.embeddings[i], payload: { page_content: d[1], metadata: d[2] },
    })),
  });
  return null;
}

async function scenario() {
  const t = [];
  const note = (step, value) => t.push([step, value]);
  const own = input.ownPoints;
  const k = input.k;
  note("count", (await client.count(c, { exact: true })).count);
  note("scroll", points((await client.scroll(c, { limit: 100, with_payload: true })).points));
  const page = await client.scroll(c, { limit: 1 });
  const page2 = await client.scroll(c, { limit: 1, offset: page.next_page_offset });
  note("scroll pages", [points(page.points), String(page.next_page_offset),
    points(page2.points), String(page2.next_page_offset)]);
  note("scroll filter", points((await client.scroll(c, { filter: topicIs("budget"), limit: 10 })).points));
  note("retrieve", points(await client.retrieve(c, { ids: [own[0], input.otherPoints[0]] })));
  note("query", hits((await client.query(c, { query: q, limit: k })).points));
  note("query filter", hits((await client.query(c, { query: q, filter: topicIs("budget"), limit: k })).points));
  note("query by point id", hits((await client.query(c, { query: own[0], limit: k })).points));
  note("query mmr", hits((await client.query(c, {
    query: { nearest: q, mmr: { diversity: 0.5, candidates_limit: k } }, limit: 2,
  })).points));
  await client.upsert(c, {
    wait: true,
    points: [{ id: input.newPoint, vector: input.textEmbeddings.changed,
      payload: { page_content: "added from node", metadata: meta("added") } }],
  });
  await client.setPayload(c, { wait: true, payload: { reviewed: true }, points: [own[1]] });
  await client.overwritePayload(c, {
    wait: true, payload: { page_content: "overwritten", metadata: meta("overwritten") }, points: [own[0]],
  });
  await client.deletePayload(c, { wait: true, keys: ["reviewed"], points: [own[1]] });
  await client.updateVectors(c, { wait: true, points: [{ id: own[0], vector: input.textEmbeddings.changed }] });
  note("after writes", points(await client.retrieve(c, { ids: [...own, input.newPoint] })));
  await client.delete(c, { wait: true, points: [own[1]] });
  await client.delete(c, { wait: true, filter: topicIs("overwritten") });
  note("after deletes", points((await client.scroll(c, { limit: 100 })).points));
  note("count at the end", (await client.count(c, { exact: true })).count);
  return t;
}

async function attempt(f) {
  try {
    await f();
    return { outcome: "ok" };
  } catch (e) {
    return { outcome: "error", name: e?.name ?? String(e), status: e?.status, message: String(e?.message ?? e) };
  }
}

async function foreign() {
  const [odep, oreg] = input.otherTeam;
  const other = input.otherPoints;
  return {
    add: await attempt(() => client.upsert(c, {
      wait: true,
      points: [{ id: input.plantedPoint, vector: input.textEmbeddings.changed,
        payload: { page_content: "planted", metadata: { department: odep, region: oreg } } }],
    })),
    upsert: await attempt(() => client.upsert(c, {
      wait: true,
      points: [{ id: other[0], vector: input.textEmbeddings.changed,
        payload: { page_content: "taken over", metadata: meta("x") } }],
    })),
    set_payload: await attempt(() => client.setPayload(c, { wait: true, payload: { vandalised: true }, points: [other[0]] })),
    update_vectors: await attempt(() => client.updateVectors(c, {
      wait: true, points: [{ id: other[0], vector: input.textEmbeddings.changed }],
    })),
    delete: await attempt(() => client.delete(c, { wait: true, points: other })),
  };
}

const modes = { seed, scenario, foreign };
const answer = await modes[input.mode]();
process.stdout.write(JSON.stringify(answer));
