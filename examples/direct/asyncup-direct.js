// asyncup-direct.js: send a File straight to S3 through a backend's asyncup.direct endpoints.
// No dependencies; an ES module for any current browser.
//
//   import { uploadFile } from "./asyncup-direct.js";
//   const result = await uploadFile(file, { endpoint: "/direct", key: "videos/a.mp4",
//                                          onProgress: (sent, total) => ... });
//
// The backend (examples/aiohttp_app.py, examples/starlette_app.py) answers, in JSON:
//   POST {endpoint}/begin    {key, size, content_type}      -> the upload (id, part plan)
//   POST {endpoint}/urls     {upload_id, checksums, numbers?} -> {parts: [{number, url, headers,
//                                                               offset, length, expires_at}]}
//   POST {endpoint}/complete {upload_id, parts}             -> the result, or 409 naming the
//                                                               parts refused
//   POST {endpoint}/abort    {upload_id}
//
// Each part's checksum is computed here first: the backend signs it into the part's URL,
// so S3 refuses any other bytes. Each part goes with exactly the headers it was given
// (the browser sets Content-Length itself), a few at a time, retried with backoff, and
// signed again when its URL has expired. Its ETag is read from the answer: the bucket's
// CORS rule must expose it (ExposeHeaders: ETag). What was sent is kept in localStorage, so
// that a page closed mid-upload resumes with the same file; the backend's sweeper removes
// uploads nobody resumes.

const CRC_TABLES = {};

function crcTable(poly) {
  if (!CRC_TABLES[poly]) {
    const table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
      table[n] = c >>> 0;
    }
    CRC_TABLES[poly] = table;
  }
  return CRC_TABLES[poly];
}

function crc(poly, bytes) {
  const table = crcTable(poly);
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = table[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  c = (c ^ 0xffffffff) >>> 0;
  return new Uint8Array([c >>> 24, (c >>> 16) & 0xff, (c >>> 8) & 0xff, c & 0xff]);
}

function base64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
  return btoa(text);
}

// The part's checksum as S3 takes it (base64), or null for an upload without one.
export async function checksum(algorithm, bytes) {
  switch (algorithm) {
    case null:
    case undefined:
      return null;
    case "CRC32":
      return base64(crc(0xedb88320, bytes));
    case "CRC32C":
      return base64(crc(0x82f63b78, bytes));
    case "SHA1":
      return base64(new Uint8Array(await crypto.subtle.digest("SHA-1", bytes)));
    case "SHA256":
      return base64(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
    default:
      throw new Error(`asyncup-direct: checksum ${algorithm} is not supported here`);
  }
}

async function post(endpoint, path, body, signal) {
  const answer = await fetch(`${endpoint}/${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
  const data = await answer.json();
  if (!answer.ok) {
    const error = new Error(data.error || `${path}: HTTP ${answer.status}`);
    error.status = answer.status;
    error.details = data;
    throw error;
  }
  return data;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// One PUT with upload progress (XMLHttpRequest: fetch reports none for uploads).
function putPart(grant, blob, onSent, signal) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(grant.method || "PUT", grant.url);
    for (const [name, value] of Object.entries(grant.headers)) {
      if (name.toLowerCase() !== "content-length") xhr.setRequestHeader(name, value);
    }
    xhr.upload.onprogress = (event) => onSent(event.loaded);
    xhr.onload = () => resolve({ status: xhr.status, etag: xhr.getResponseHeader("ETag"), text: xhr.responseText });
    xhr.onerror = () => resolve({ status: 0, etag: null, text: "network error" });
    if (signal) signal.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.onabort = () => reject(new DOMException("aborted", "AbortError"));
    xhr.send(blob);
  });
}

function storageKey(key, file) {
  return `asyncup-direct:${key}:${file.size}:${file.lastModified}`;
}

export async function uploadFile(file, options) {
  const { endpoint, key, concurrency = 4, retries = 4, onProgress = () => {}, signal } = options;
  const saved = storageKey(key, file);
  let state = JSON.parse(localStorage.getItem(saved) || "null");
  if (!state) {
    const upload = await post(endpoint, "begin", { key, size: file.size, content_type: file.type }, signal);
    state = { upload, reports: {} };
    localStorage.setItem(saved, JSON.stringify(state));
  }
  const { upload } = state;
  const save = () => localStorage.setItem(saved, JSON.stringify(state));
  const slice = (n) => {
    const start = (n - 1) * upload.part_size;
    return file.slice(start, Math.min(start + upload.part_size, file.size));
  };
  const sums = {};
  const sumOf = async (n) => {
    if (!(n in sums)) sums[n] = await checksum(upload.checksum_algorithm, new Uint8Array(await slice(n).arrayBuffer()));
    return sums[n];
  };
  const sent = {};
  const progress = () => onProgress(Object.values(sent).reduce((a, b) => a + b, 0), file.size);
  for (const n of Object.keys(state.reports)) sent[n] = slice(Number(n)).size;
  progress();

  // URLs for ``numbers`` (their checksums signed in), or for what S3 lacks when null.
  const grantsFor = async (numbers) => {
    const checksums = {};
    const wanted = numbers || Array.from({ length: upload.part_count }, (_, i) => i + 1).filter((n) => !(n in state.reports));
    if (!wanted.length) return [];
    if (upload.checksum_algorithm) for (const n of wanted) checksums[n] = await sumOf(n);
    const body = { upload_id: upload.upload_id, checksums };
    if (numbers) body.numbers = numbers;
    return (await post(endpoint, "urls", body, signal)).parts;
  };

  const sendPart = async (grant) => {
    for (let attempt = 1; ; attempt++) {
      const answer = await putPart(grant, slice(grant.number), (loaded) => { sent[grant.number] = loaded; progress(); }, signal);
      if (answer.status === 200) {
        if (!answer.etag) throw new Error("the store's answer hides its ETag: the bucket's CORS rule must expose it (ExposeHeaders: ETag)");
        state.reports[grant.number] = { number: grant.number, etag: answer.etag, checksum: await sumOf(grant.number) };
        sent[grant.number] = grant.length;
        save();
        progress();
        return;
      }
      delete sent[grant.number];
      const expired = answer.status === 403 && Date.now() / 1000 >= grant.expires_at - 5;
      const retryable = answer.status === 0 || answer.status >= 500 || answer.status === 429 || expired;
      if (!retryable || attempt > retries) throw new Error(`part ${grant.number}: HTTP ${answer.status} ${answer.text.slice(0, 300)}`);
      await sleep(Math.min(8000, 200 * 2 ** attempt * (0.5 + Math.random())));
      if (expired) [grant] = await grantsFor([grant.number]);
    }
  };

  const sendAll = async (grants) => {
    const queue = grants.slice();
    const worker = async () => {
      for (let grant = queue.shift(); grant; grant = queue.shift()) await sendPart(grant);
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, queue.length) }, worker));
  };

  for (let grants = await grantsFor(null); grants.length; grants = await grantsFor(null)) {
    await sendAll(grants);
  }
  for (let round = 0; ; round++) {
    try {
      const result = await post(endpoint, "complete", { upload_id: upload.upload_id, parts: Object.values(state.reports) }, signal);
      localStorage.removeItem(saved);
      return result;
    } catch (error) {
      const refused = error.status === 409 && error.details;
      if (!refused || round > 0) throw error;
      // Parts the store does not hold as reported: send them again, once.
      const again = [...refused.missing, ...refused.wrong_size, ...refused.mismatched].filter((n) => n >= 1 && n <= upload.part_count);
      for (const n of again) delete state.reports[n];
      save();
      if (again.length) await sendAll(await grantsFor(again));
    }
  }
}

export async function abortUpload(endpoint, uploadId) {
  return post(endpoint, "abort", { upload_id: uploadId });
}
