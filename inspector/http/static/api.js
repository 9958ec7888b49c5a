// The JSON API under /api/v1: fetch with the bearer token, XHR uploads with progress, Server-Sent
// Events over a POST, and decoding of the results' wire items.

export const API = "/api/v1";
const TOKEN_KEY = "inspector.token";

/** An error answer of the server ({code, message, field}) or of the network. */
export class ApiError extends Error {
  constructor(code, message, status = 0, field = "") {
    super(message);
    this.code = code;
    this.status = status;
    this.field = field;
  }
  toString() {
    return `${this.code}: ${this.message}`;
  }
}

// ---- the bearer token: asked for once on a 401, kept in sessionStorage (never a URL or cookie) ---
let asking = null;

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function askToken(again) {
  if (!asking) {
    asking = new Promise((resolve) => {
      const dialog = document.getElementById("token-dialog");
      const input = dialog.querySelector("input");
      dialog.querySelector(".why").textContent = again
        ? "That token was refused. Enter the server's bearer token:"
        : "This server needs a bearer token:";
      input.value = "";
      dialog.onclose = () => {
        const t = dialog.returnValue === "ok" ? input.value.trim() : "";
        if (t) sessionStorage.setItem(TOKEN_KEY, t);
        asking = null;
        resolve(t);
      };
      dialog.showModal();
    });
  }
  return asking;
}

function headers(extra = {}) {
  const h = { ...extra };
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    /* not JSON */
  }
  if (body && body.code) return new ApiError(body.code, body.message || "", response.status, body.field || "");
  return new ApiError(`HTTP ${response.status}`, response.statusText || "request failed", response.status);
}

/** fetch under /api/v1; a 401 asks for the token once and retries. Returns the Response. */
export async function request(path, { method = "GET", json, body, signal, headers: extra } = {}) {
  for (let attempt = 0; ; attempt++) {
    const init = { method, signal, headers: headers(extra) };
    if (json !== undefined) {
      init.body = JSON.stringify(json);
      init.headers["Content-Type"] = "application/json";
    } else if (body !== undefined) init.body = body;
    let response;
    try {
      response = await fetch(API + path, init);
    } catch (e) {
      if (e.name === "AbortError") throw e;
      throw new ApiError("UNAVAILABLE", `the server cannot be reached (${e.message})`);
    }
    if (response.status === 401 && attempt < 2) {
      if (await askToken(attempt > 0 || !!token())) continue;
    }
    if (!response.ok) throw await errorOf(response);
    return response;
  }
}

export async function getJSON(path, opts) {
  return (await request(path, opts)).json();
}

export async function postJSON(path, json, opts = {}) {
  return (await request(path, { ...opts, method: "POST", json })).json();
}

/** Upload a file with XMLHttpRequest (for its progress events). Returns {promise, abort}. */
export function upload(path, file, onProgress) {
  let xhr = null;
  let aborted = false;
  const send = () =>
    new Promise((resolve, reject) => {
      xhr = new XMLHttpRequest();
      xhr.open("POST", API + path);
      const t = token();
      if (t) xhr.setRequestHeader("Authorization", `Bearer ${t}`);
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
      xhr.onload = () => {
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch {
          /* not JSON */
        }
        if (xhr.status >= 200 && xhr.status < 300) resolve(body);
        else if (xhr.status === 401) resolve({ __unauthorized: true, body });
        else reject(body && body.code ? new ApiError(body.code, body.message, xhr.status, body.field || "")
          : new ApiError(`HTTP ${xhr.status}`, xhr.statusText || "upload failed", xhr.status));
      };
      xhr.onerror = () => reject(new ApiError("UNAVAILABLE", "the upload failed: the server cannot be reached"));
      xhr.onabort = () => reject(new DOMException("upload cancelled", "AbortError"));
      xhr.send(file);
    });
  const promise = (async () => {
    for (let attempt = 0; ; attempt++) {
      const r = await send();
      if (!r || !r.__unauthorized) return r;
      if (attempt >= 2 || aborted || !(await askToken(attempt > 0 || !!token())))
        throw new ApiError(r.body?.code || "UNAUTHENTICATED", r.body?.message || "a bearer token is needed", 401);
    }
  })();
  return { promise, abort: () => { aborted = true; xhr && xhr.abort(); } };
}

/** POST `json`, then read Server-Sent Events ("event:" / "data:" lines) from the body; calls
 * onEvent(kind, data) for each. Resolves with the result event's data; rejects with an ApiError
 * for an error event, or an AbortError when `signal` aborts (the server then stops the work). */
export async function postStream(path, json, { signal, onEvent }) {
  const response = await request(path, { method: "POST", json, signal, headers: { Accept: "text/event-stream" } });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "", kind = "message", data = [], result = null;
  const dispatch = () => {
    if (!data.length) return;
    const payload = JSON.parse(data.join("\n"));
    data = [];
    const k = kind;
    kind = "message";
    if (k === "error") throw new ApiError(payload.code, payload.message, payload.status || 0, payload.field || "");
    if (k === "result") result = payload;
    onEvent && onEvent(k, payload);
  };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl).replace(/\r$/, "");
        buffer = buffer.slice(nl + 1);
        if (line === "") dispatch();
        else if (line.startsWith("event:")) kind = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
    }
    dispatch();
  } catch (e) {
    reader.cancel().catch(() => {});
    throw e;
  }
  if (!result) throw new ApiError("UNAVAILABLE", "the stream ended without a result");
  return result;
}

// ---- results: {model_id, providers, warnings, info, items: [...]} --------------------------------
export function bytesOf(b64) {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function half(bits) {
  const s = bits & 0x8000 ? -1 : 1, e = (bits >> 10) & 0x1f, f = bits & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** A tensor item {dtype, shape, data} -> {shape, data: typed array} (little-endian bytes). */
export function decodeTensor(item) {
  const bytes = bytesOf(item.data);
  const view = new DataView(bytes.buffer);
  const n = item.shape.reduce((a, b) => a * b, 1);
  let data;
  switch (item.dtype) {
    case "float32":
      data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = view.getFloat32(4 * i, true);
      break;
    case "float64":
      data = new Float64Array(n);
      for (let i = 0; i < n; i++) data[i] = view.getFloat64(8 * i, true);
      break;
    case "float16":
      data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = half(view.getUint16(2 * i, true));
      break;
    case "int64":
      data = new Float64Array(n);
      for (let i = 0; i < n; i++) data[i] = Number(view.getBigInt64(8 * i, true));
      break;
    case "int32":
      data = new Int32Array(n);
      for (let i = 0; i < n; i++) data[i] = view.getInt32(4 * i, true);
      break;
    case "uint8":
    case "bool":
      data = bytes;
      break;
    default:
      throw new ApiError("UNIMPLEMENTED", `the browser view cannot decode ${item.dtype} tensors`);
  }
  return { shape: item.shape, dtype: item.dtype, data };
}

export function items(result, group) {
  return result.items.filter((i) => i.group === group);
}

export function item(result, group, name) {
  return result.items.find((i) => i.group === group && (name === undefined || i.name === name));
}

export function pngURL(it) {
  return `data:${it.media_type || "image/png"};base64,${it.data}`;
}

/** A File/Blob -> base64 (no data: prefix). */
export function fileBase64(blob) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result).replace(/^data:[^,]*,/, ""));
    r.onerror = () => reject(r.error);
    r.readAsDataURL(blob);
  });
}
