// The drawing page. What is on the paper (an uploaded image and the strokes drawn over it) is
// kept as data and redrawn from it, so Undo is "drop the last stroke and redraw". While a
// stroke is drawn the paper is sent, as a PNG, to the chosen model's public predict route at
// most every THROTTLE_MS with at most one request in flight (the latest drawing wins), and once
// more when the stroke ends; the answer's label, the probability of every class and the model's
// input are shown.
//
// The page starts as the default model's page (the MAX route POST /model/predict). It then
// asks the server which models it serves (GET /models, and each one's metadata and labels) and
// offers them in a picker; ?model=NAME in the address opens another one, whose answers come
// from POST /models/NAME/predict and whose labels name the bars.
//
// An uploaded photo is turned upright (its EXIF orientation) and, when larger than the server
// needs, shrunk in the browser to SHRINK_SIDE pixels on its longer side before it is sent, with
// the upload's progress on the status line; a file still over the server's body limit
// (GET /app/limits.json) is not sent, and the page says why.
"use strict";

const THROTTLE_MS = 150;
const INCLUDE_INPUT = "?include_input=true";
// The longer side an uploaded photo is shrunk to: four times what the digit search works on,
// and more than any model's input.
const SHRINK_SIDE = 2048;
const SHRINK_QUALITY = 0.9;
// Photos smaller than this are sent as they are, whatever their size in pixels.
const SHRINK_ABOVE_BYTES = 1 << 20;

const pad = document.getElementById("pad");
const context = pad.getContext("2d");
const undoButton = document.getElementById("undo");
const clearButton = document.getElementById("clear");
const upload = document.getElementById("upload");
const result = document.getElementById("result");
const predictionOutput = document.getElementById("prediction");
const probabilityText = document.getElementById("probability");
const chart = document.getElementById("chart");
const modelInput = document.getElementById("model-input");
const modelInputEmpty = document.getElementById("model-input-empty");
const statusLine = document.getElementById("status");
const picker = document.getElementById("models");
const metadataLink = document.getElementById("metadata-link");
const uploadLabel = document.getElementById("upload-label");

// A stroke about as wide, relative to the digit, as the pen strokes of MNIST.
const SIDE = pad.width;
const LINE_WIDTH = SIDE / 14;

// What is on the paper: an uploaded image ({file, image}: what is sent, and an ImageBitmap of
// it upright, null when the browser cannot show it) or null, under the strokes, each a list of
// [x, y] points in canvas pixels.
const paper = { photo: null, strokes: [] };
let activePointer = null;
// Counts uploads begun and paper changes that supersede them: an upload still decoding when
// the count moves on is dropped.
let uploadTicket = 0;

// The request line: one request at a time; `next` is what to send when it is free.
const line = {
  next: null, // {body: () => Promise<Blob>, name, announce, upload}
  upload: null, // the XMLHttpRequest sending an uploaded file, while it does
  inFlight: false,
  timer: 0,
  lastSentAt: -Infinity,
  sent: 0, // requests sent so far
  shown: 0, // the request whose answer is on screen
  stale: 0, // answers to requests up to this one are dropped (the paper changed under them)
};

// The model the page is for. Until the server has told which models it serves, the page is
// that of the default model as the MAX routes serve it, the handwritten-digit model.
let model = {
  name: null, // the default, whichever it is
  isDefault: true,
  predictUrl: `/model/predict${INCLUDE_INPUT}`,
  metadataUrl: "/model/metadata",
  title: "Digits (MNIST)",
  shortTitle: "Digits",
  words: digitWords("MNIST", [1, 28, 28]),
  labels: Array.from({ length: 10 }, (_, digit) => String(digit)),
};

// The chart's bars, one a class, in the model's output order.
let bars = [];

// One bar a label: columns under one-character names (digits), rows beside longer ones.
function buildBars(labels, words) {
  const rows = labels.some((name) => name.length > 2);
  chart.classList.toggle("rows", rows);
  result.classList.toggle("long-names", rows);
  chart.style.setProperty("--classes", String(labels.length));
  chart.setAttribute("aria-label", words.chart);
  bars = labels.map((name) => {
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.setAttribute("role", "meter");
    bar.setAttribute("aria-label", words.bar(name));
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    const track = document.createElement("div");
    track.className = "track";
    const fill = document.createElement("div");
    fill.className = "fill";
    track.append(fill);
    const label = document.createElement("span");
    label.className = "name";
    label.setAttribute("aria-hidden", "true");
    label.textContent = name;
    bar.append(track, label);
    return bar;
  });
  chart.replaceChildren(...bars);
}

// Rounded down and at most 99.9%: a probability of exactly 1 is float32 rounding, not certainty.
function percent(probability) {
  return `${(Math.min(999, Math.floor(probability * 1000)) / 10).toFixed(1)}%`;
}

function isEmpty() {
  return paper.photo === null && paper.strokes.length === 0;
}

// --- The paper -------------------------------------------------------------------------

function redraw() {
  const { ink, background } = model.words;
  context.fillStyle = background;
  context.fillRect(0, 0, SIDE, SIDE);
  const image = paper.photo && paper.photo.image;
  if (image) {
    const scale = Math.min(SIDE / image.width, SIDE / image.height);
    const width = image.width * scale;
    const height = image.height * scale;
    context.drawImage(image, (SIDE - width) / 2, (SIDE - height) / 2, width, height);
  }
  context.strokeStyle = ink;
  context.lineWidth = LINE_WIDTH;
  context.lineCap = "round";
  context.lineJoin = "round";
  for (const stroke of paper.strokes) {
    const [[x0, y0], ...rest] = stroke;
    context.beginPath();
    context.moveTo(x0, y0);
    // A lone point is a tiny segment, which the round caps turn into a dot.
    context.lineTo(x0 + 0.01, y0);
    for (const [x, y] of rest) {
      context.lineTo(x, y);
    }
    context.stroke();
  }
  pad.dataset.strokes = String(paper.strokes.length);
  undoButton.disabled = isEmpty();
  clearButton.disabled = isEmpty();
}

// The paper changed: redraw it, and predict again (now when `final`, else throttled).
function changed(final) {
  redraw();
  if (isEmpty()) {
    resetResult();
  } else if (paper.strokes.length === 0) {
    request(() => Promise.resolve(paper.photo.file), paper.photo.file.name, final, true);
  } else {
    request(paperPng, "drawing.png", final);
  }
}

function paperPng() {
  return new Promise((resolve, reject) => {
    pad.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("the canvas gave no PNG"))), "image/png");
  });
}

function padPoint(event) {
  const box = pad.getBoundingClientRect();
  return [
    ((event.clientX - box.left - pad.clientLeft) * SIDE) / pad.clientWidth,
    ((event.clientY - box.top - pad.clientTop) * SIDE) / pad.clientHeight,
  ];
}

function activeStroke() {
  return paper.strokes[paper.strokes.length - 1];
}

pad.addEventListener("pointerdown", (event) => {
  if (activePointer !== null || (event.pointerType === "mouse" && event.button !== 0)) {
    return;
  }
  event.preventDefault();
  uploadTicket += 1;
  pad.setPointerCapture(event.pointerId);
  activePointer = event.pointerId;
  paper.strokes.push([padPoint(event)]);
  changed(false);
});

pad.addEventListener("pointermove", (event) => {
  if (event.pointerId !== activePointer) {
    return;
  }
  const coalesced = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const each of coalesced.length > 0 ? coalesced : [event]) {
    activeStroke().push(padPoint(each));
  }
  changed(false);
});

function endStroke(event) {
  if (event.pointerId !== activePointer) {
    return;
  }
  activePointer = null;
  changed(true);
}

pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

function undo() {
  if (activePointer !== null) {
    return;
  }
  if (paper.strokes.length > 0) {
    paper.strokes.pop();
  } else if (paper.photo !== null) {
    forgetPhoto();
  }
  changed(true);
}

function clear() {
  if (activePointer !== null) {
    return;
  }
  uploadTicket += 1;
  paper.strokes = [];
  forgetPhoto();
  changed(true);
}

function forgetPhoto() {
  if (paper.photo && paper.photo.image) {
    paper.photo.image.close();
  }
  paper.photo = null;
}

// A button that disables itself would drop the keyboard focus on the floor: hand it to the pad.
function keepFocus(action) {
  return () => {
    action();
    if (document.activeElement && document.activeElement.disabled) {
      pad.focus();
    }
  };
}

undoButton.addEventListener("click", keepFocus(undo));
clearButton.addEventListener("click", keepFocus(clear));

document.addEventListener("keydown", (event) => {
  const modified = event.ctrlKey || event.metaKey;
  if (modified && !event.shiftKey && !event.altKey && event.key.toLowerCase() === "z") {
    event.preventDefault();
    undo();
  } else if (!modified && !event.altKey && (event.key === "Escape" || event.key === "Delete")) {
    clear();
  }
});

upload.addEventListener("change", async () => {
  const file = upload.files[0];
  upload.value = "";
  if (!file) {
    return;
  }
  const ticket = ++uploadTicket;
  delete upload.dataset.progress;
  let image = null;
  // What is sent: the file, or a smaller copy with its size in pixels.
  let sent = { file, width: null, height: null };
  try {
    // Upright as its EXIF orientation says; null for a format the browser cannot read.
    if (typeof createImageBitmap === "function") {
      image = await createImageBitmap(file, { imageOrientation: "from-image" }).catch(() => null);
    }
    if (image) {
      sent = (await shrunk(file, image)) ?? { file, width: image.width, height: image.height };
    }
  } catch {
    // The photo goes as it is; the server reads it.
  }
  const limit = await bodyLimit();
  if (ticket !== uploadTicket) {
    // Another upload, a stroke or Clear came meanwhile.
    image?.close();
    return;
  }
  if (limit !== null && sent.file.size > limit) {
    image?.close();
    setStatus(`${file.name} is ${megabytes(sent.file.size)}, over the ${megabytes(limit)} the server takes, `
      + "so it was not sent. Choose a smaller picture, or a screenshot of it.", "error");
    return;
  }
  // A photo still being sent is of no use now.
  line.stale = line.sent;
  line.upload?.abort();
  forgetPhoto();
  paper.photo = { file: sent.file, image };
  paper.strokes = [];
  changed(true);
  // What was sent, for a test to check: how, its bytes and, when known, its pixels.
  const how = sent.file === file ? (image ? "original" : "as is") : "shrunk";
  const pixels = sent.width === null ? "" : ` ${sent.width}x${sent.height}`;
  upload.dataset.sent = `${how} ${sent.file.size}${pixels}`;
  if (!image) {
    setStatus(`Your browser cannot show ${file.name}; it was sent as it is.`, "hint");
  }
});

// When `file` is a large JPEG (a camera's photo), the upright `image` shrunk to SHRINK_SIDE
// on its longer side as a JPEG, {file, width, height}: the server finds the same digit in it,
// from far fewer bytes. Otherwise null: other formats may be transparent, which a JPEG cannot
// keep, and they go as they are.
async function shrunk(file, image) {
  const scale = SHRINK_SIDE / Math.max(image.width, image.height);
  if (file.type !== "image/jpeg" || file.size <= SHRINK_ABOVE_BYTES || scale >= 1) {
    return null;
  }
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(image.width * scale);
  canvas.height = Math.round(image.height * scale);
  const drawing = canvas.getContext("2d");
  drawing.imageSmoothingQuality = "high";
  drawing.drawImage(image, 0, 0, canvas.width, canvas.height);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", SHRINK_QUALITY));
  if (!blob || blob.size >= file.size) {
    return null;
  }
  const name = file.name.replace(/\.[^.]*$/, "") + ".jpg";
  return { file: new File([blob], name, { type: "image/jpeg" }), width: canvas.width, height: canvas.height };
}

// The largest body the server takes, asked until the server has said; null when it cannot
// be asked.
let knownLimit = null;
async function bodyLimit() {
  if (knownLimit === null) {
    const limits = await fetch("/app/limits.json").then((response) => response.json()).catch(() => null);
    knownLimit = limits && Number.isFinite(limits.max_body_bytes) ? limits.max_body_bytes : null;
  }
  return knownLimit;
}

function megabytes(bytes) {
  return `${(bytes / (1 << 20)).toFixed(1)} MB`;
}

// --- The request line ------------------------------------------------------------------

// Asks for a prediction of `body()` (called when sent, so it is the latest paper); `announce`
// says the drawing is done, so the answer is spoken and sent without waiting.
function request(body, name, announce, isUpload) {
  line.next = { body, name, announce: announce || (line.next !== null && line.next.announce), upload: isUpload };
  result.setAttribute("aria-busy", "true");
  if (!line.inFlight) {
    sendLater();
  }
}

function sendLater() {
  clearTimeout(line.timer);
  const wait = line.next.announce ? 0 : Math.max(0, line.lastSentAt + THROTTLE_MS - performance.now());
  line.timer = setTimeout(send, wait);
}

async function send() {
  if (line.inFlight || line.next === null) {
    return;
  }
  const { body, name, announce, upload: isUpload } = line.next;
  line.next = null;
  line.inFlight = true;
  line.lastSentAt = performance.now();
  const id = ++line.sent;
  let answer;
  try {
    answer = await predict(await body(), name, isUpload, () => id > line.stale);
  } catch (error) {
    answer = { error: `Could not send the image: ${error.message}` };
  }
  line.inFlight = false;
  if (!answer.aborted && id > line.shown && id > line.stale) {
    line.shown = id;
    show(answer, announce);
    if (announce) {
      // The number of the latest answer to a finished drawing, for a test to wait on.
      result.dataset.answer = String(id);
    }
  }
  if (line.next !== null) {
    sendLater();
  } else {
    result.setAttribute("aria-busy", "false");
  }
}

// Posts the image; an upload shows its progress on the status line, in quarters (the line is
// read out), for as long as `wanted()` says its answer is.
async function predict(blob, name, isUpload, wanted) {
  const form = new FormData();
  form.append("image", blob, name);
  let quarter = -1;
  const progress = isUpload
    ? (fraction) => {
      if (!wanted()) {
        return;
      }
      upload.dataset.progress = String(Math.round(fraction * 100));
      if (Math.floor(fraction * 4) > quarter) {
        quarter = Math.floor(fraction * 4);
        setStatus(`Sending ${name} (${megabytes(blob.size)}): ${quarter * 25}%`, "hint");
      }
    }
    : null;
  const response = await post(model.predictUrl, form, progress);
  if (response === null) {
    return { error: "Cannot reach the server. Is it still running?" };
  }
  if (response.aborted) {
    return { aborted: true };
  }
  let body = null;
  try {
    body = JSON.parse(response.text);
  } catch {
    // Not JSON: the status says what happened.
  }
  if (response.status === 200 && body && Array.isArray(body.predictions) && body.predictions.length > 0) {
    return { prediction: body.predictions[0] };
  }
  const message = body && body.message ? body.message : `The server answered ${response.status}.`;
  if (response.status === 413) {
    return { error: `${name} is too big for the server: ${message}. Choose a smaller picture.`, status: 413 };
  }
  return { error: message, status: response.status };
}

// POSTs `form` to `url`, reporting an upload's progress (0 to 1) to `progress` when given,
// and keeping its request in `line.upload` so that it can be stopped; {status, text},
// {aborted: true}, or null when the server cannot be reached.
function post(url, form, progress) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    if (progress) {
      line.upload = xhr;
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable && event.total > 0) {
          progress(event.loaded / event.total);
        }
      });
    }
    const done = (outcome) => () => {
      if (line.upload === xhr) {
        line.upload = null;
      }
      resolve(outcome());
    };
    xhr.addEventListener("load", done(() => ({ status: xhr.status, text: xhr.responseText })));
    xhr.addEventListener("error", done(() => null));
    xhr.addEventListener("abort", done(() => ({ aborted: true })));
    xhr.send(form);
  });
}

// --- The result panel ------------------------------------------------------------------

function show(answer, announce) {
  const prediction = answer.prediction;
  // in_domain is false when the model's domain check finds nothing like its classes (a
  // letter or a face, to a digit model); a model without that check leaves it out.
  const outOfDomain = prediction && prediction.in_domain === false;
  result.classList.toggle("out-of-domain", outOfDomain);
  if (outOfDomain) {
    predictionOutput.textContent = "?";
    probabilityText.textContent = model.words.outOfDomain;
    showProbabilities(prediction.probabilities);
    showModelInput(prediction.model_input);
    setStatus(`${model.words.outOfDomain} If it is one, the closest is ${prediction.label} `
      + `(${percent(prediction.probability)}).`, "hint");
  } else if (prediction) {
    predictionOutput.textContent = prediction.label;
    probabilityText.textContent = `${percent(prediction.probability)} sure`;
    showProbabilities(prediction.probabilities);
    showModelInput(prediction.model_input);
    // What is on screen already is only spoken; the status line shows hints and errors.
    setStatus(announce ? reading(prediction) : "", "spoken");
  } else {
    // A 400 is the server's word on this image (no digit in it, say), not a fault.
    const rejected = answer.status === 400;
    predictionOutput.textContent = "?";
    probabilityText.textContent = rejected ? model.words.empty : "No answer";
    showProbabilities(null);
    showModelInput(null);
    setStatus(answer.error, rejected ? "hint" : "error");
  }
}

// The answer in words, with the runner-up: a close second tells why a drawing is misread.
function reading(prediction) {
  const others = prediction.probabilities.map((probability, index) => ({ probability, index }));
  const second = others.filter(({ index }) => index !== prediction.prediction)
    .reduce((best, each) => (each.probability > best.probability ? each : best));
  const secondName = model.labels[second.index] ?? String(second.index);
  return `Reads ${prediction.label}, ${percent(prediction.probability)} sure; next is ${secondName} `
    + `at ${percent(second.probability)}.`;
}

function resetResult() {
  clearTimeout(line.timer);
  line.next = null;
  line.stale = line.sent;
  line.upload?.abort();
  result.setAttribute("aria-busy", "false");
  result.classList.remove("out-of-domain");
  predictionOutput.textContent = "–";
  probabilityText.textContent = model.words.empty;
  showProbabilities(null);
  showModelInput(null);
  setStatus("", "hint");
}

function showProbabilities(probabilities) {
  const values = Array.isArray(probabilities) && probabilities.length === bars.length ? probabilities : null;
  const winner = values ? values.indexOf(Math.max(...values)) : -1;
  bars.forEach((bar, index) => {
    const probability = values ? values[index] : 0;
    bar.style.setProperty("--p", String(probability));
    bar.classList.toggle("winner", index === winner);
    bar.setAttribute("aria-valuenow", (probability * 100).toFixed(1));
    bar.setAttribute("aria-valuetext", percent(probability));
  });
}

function showModelInput(source) {
  const present = typeof source === "string" && source.startsWith("data:image/");
  if (present) {
    modelInput.src = source;
  } else {
    modelInput.removeAttribute("src");
  }
  modelInput.hidden = !present;
  modelInputEmpty.hidden = present;
}

// `kind` is "hint", "error" or "spoken" (for screen readers only).
function setStatus(message, kind) {
  statusLine.textContent = message;
  statusLine.className = `status ${kind}`;
}

// --- The models ------------------------------------------------------------------------

// What the data sets this project trains on show, for the picker and the prompts; a model
// trained on any other is named by its data set.
const SUBJECTS = { MNIST: "Digits", "Fashion-MNIST": "Clothing" };

// What the page says, and the paper it offers, for a model that reads handwritten digits:
// the page as it always was, dark ink on white paper.
function digitWords(dataset, [, height, width]) {
  return {
    task: "draw a digit",
    padTitle: "Your digit",
    padLabel: "Drawing area: draw one digit with a mouse, pen or finger. Ctrl+Z undoes the last stroke, "
      + "Escape clears.",
    hint: "Draw one digit, large and centred, or upload a photo or scan.",
    empty: "Draw a digit",
    outOfDomain: "This doesn't look like a digit.",
    chart: "Probability of each digit",
    bar: (name) => `Digit ${name}`,
    seen: `What the model saw: ${width}×${height} pixels, white ink on black, as in ${dataset}.`,
    seenSize: [width, height],
    uploadFirst: false,
    ink: "#111111",
    background: "#ffffff",
  };
}

// For a model of pictures (resized and cropped as they are, not found and centred like ink):
// uploading a picture is the way in; drawing stays, light on dark as such data sets are.
function pictureWords(dataset, [, height, width]) {
  const subject = SUBJECTS[dataset];
  const what = subject ? `a picture of ${subject.toLowerCase()}` : "a picture";
  return {
    task: `upload ${what}`,
    padTitle: "Your picture",
    padLabel: "Drawing area: upload a picture, or draw one with a mouse, pen or finger. Ctrl+Z undoes the last "
      + "stroke, Escape clears.",
    hint: `Upload ${what}: one thing filling the frame, light on a dark background, as in ${dataset}. `
      + "You can also draw one here.",
    empty: `Upload ${what}`,
    outOfDomain: `This doesn't look like ${what}.`,
    chart: "Probability of each class",
    bar: (name) => name,
    seen: `What the model saw: ${width}×${height} pixels, as in ${dataset}.`,
    seenSize: [width, height],
    uploadFirst: true,
    ink: "#f2f2f2",
    background: "#000000",
  };
}

// `url`'s JSON body, or an Error.
async function getJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) {
    throw new Error(`${url} answered ${response.status}`);
  }
  return response.json();
}

// The model called `name` as the page uses it, from its metadata and labels; `isDefault`
// when the MAX routes serve it, which the page then calls as it always did.
async function describe(name, isDefault) {
  const path = `/models/${encodeURIComponent(name)}`;
  const [metadata, labels] = await Promise.all([getJson(`${path}/metadata`), getJson(`${path}/labels`)]);
  const dataset = String(metadata.dataset || name);
  const shape = Array.isArray(metadata.input_shape) ? metadata.input_shape : [1, 28, 28];
  const subject = SUBJECTS[dataset];
  const names = Array.from({ length: Number(labels.count ?? labels.labels.length) }, (_, index) => String(index));
  for (const label of labels.labels) {
    names[Number(label.id)] = String(label.name);
  }
  return {
    name,
    isDefault,
    predictUrl: isDefault ? `/model/predict${INCLUDE_INPUT}` : `${path}/predict${INCLUDE_INPUT}`,
    metadataUrl: isDefault ? "/model/metadata" : `${path}/metadata`,
    title: subject ? `${subject} (${dataset})` : dataset,
    shortTitle: subject ?? dataset,
    words: (metadata.preprocessing === "digit" ? digitWords : pictureWords)(dataset, shape),
    labels: names,
  };
}

// The models the server serves, in its order, and the name of the default one.
async function loadModels() {
  const [list, defaultMetadata] = await Promise.all([getJson("/models"), getJson("/model/metadata")]);
  const names = list.models.map((entry) => String(entry.modelName));
  const defaultName = names.includes(defaultMetadata.id) ? defaultMetadata.id : names[0];
  const models = await Promise.all(names.map((name) => describe(name, name === defaultName)));
  // Two models of one data set are told apart by their names.
  const shared = models.filter((each) => models.some((other) => other !== each && other.shortTitle === each.shortTitle));
  for (const each of shared) {
    each.title = `${each.title}: ${each.name}`;
    each.shortTitle = each.name;
  }
  return { models, defaultName };
}

// One radio button a model, labelled with its title (its short title on a phone).
function showPicker(models) {
  for (const each of models) {
    const choice = document.createElement("label");
    choice.className = "choice";
    const radio = document.createElement("input");
    radio.type = "radio";
    radio.name = "model";
    radio.value = each.name;
    const title = document.createElement("span");
    const short = document.createElement("span");
    short.className = "short";
    short.textContent = each.shortTitle;
    const long = document.createElement("span");
    long.className = "long";
    long.textContent = each.title;
    title.append(short, long);
    choice.append(radio, title);
    picker.append(choice);
    radio.addEventListener("change", () => {
      if (radio.checked) {
        use(each);
        remember(each);
      }
    });
  }
  picker.hidden = false;
}

// Makes the page that of `chosen`, and asks it about what is on the paper, if anything.
function use(chosen) {
  const sameBars = chosen.labels.join("\n") === model.labels.join("\n")
    && chosen.words.chart === model.words.chart;
  const asking = model.predictUrl;
  model = chosen;
  const { words } = chosen;
  document.title = `max-mnist — ${words.task}`;
  document.getElementById("task").textContent = words.task;
  document.getElementById("pad-title").textContent = words.padTitle;
  document.getElementById("hint-text").textContent = words.hint;
  document.getElementById("model-input-caption").textContent = words.seen;
  [modelInput.width, modelInput.height] = words.seenSize;
  modelInput.alt = `The ${words.seenSize.join("×")} image the model saw`;
  pad.setAttribute("aria-label", words.padLabel);
  uploadLabel.classList.toggle("primary", words.uploadFirst);
  metadataLink.href = chosen.metadataUrl;
  if (!sameBars) {
    buildBars(chosen.labels, words);
  }
  for (const radio of picker.querySelectorAll("input")) {
    radio.checked = radio.value === chosen.name;
  }
  if (chosen.predictUrl !== asking) {
    // The answer on screen, and those on their way, are the other model's: ask this one (now,
    // unless a stroke is still being drawn).
    resetResult();
    changed(activePointer === null);
  }
  picker.dataset.model = chosen.name;
}

// Puts the chosen model in the address, so that a link or a reload opens it again; the
// default model's address is the bare page.
function remember(chosen) {
  const url = new URL(window.location.href);
  if (chosen.isDefault) {
    url.searchParams.delete("model");
  } else {
    url.searchParams.set("model", chosen.name);
  }
  window.history.replaceState(null, "", url);
}

async function start() {
  buildBars(model.labels, model.words);
  redraw();
  resetResult();
  let served;
  try {
    served = await loadModels();
  } catch {
    // No picker (the server is older, or still loading): the default model's page as it is.
    return;
  }
  const { models, defaultName } = served;
  showPicker(models);
  const asked = new URLSearchParams(window.location.search).get("model");
  const chosen = models.find((each) => each.name === asked) ?? models.find((each) => each.name === defaultName);
  use(chosen);
  if (asked !== null && chosen.name !== asked) {
    setStatus(`This server has no model called “${asked}”; here is ${chosen.title}.`, "hint");
  }
}

start();
