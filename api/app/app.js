// The drawing page. What is on the paper (an uploaded image and the strokes drawn over it) is
// kept as data and redrawn from it, so Undo is "drop the last stroke and redraw". While a
// stroke is drawn the paper is sent, as a PNG, to the public POST /model/predict at most every
// THROTTLE_MS with at most one request in flight (the latest drawing wins), and once more when
// the stroke ends; the answer's digit, ten probabilities and 28×28 model input are shown.
"use strict";

const PREDICT_URL = "/model/predict?include_input=true";
const THROTTLE_MS = 150;
const INK = "#111111";
const PAPER = "#ffffff";

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

// A stroke about as wide, relative to the digit, as the pen strokes of MNIST.
const SIDE = pad.width;
const LINE_WIDTH = SIDE / 14;

// What is on the paper: an uploaded image ({file, image}, image null when the browser cannot
// show it) or null, under the strokes, each a list of [x, y] points in canvas pixels.
const paper = { photo: null, strokes: [] };
let activePointer = null;

// The request line: one request at a time; `next` is what to send when it is free.
const line = {
  next: null, // {body: () => Promise<Blob>, name, announce}
  inFlight: false,
  timer: 0,
  lastSentAt: -Infinity,
  sent: 0, // requests sent so far
  shown: 0, // the request whose answer is on screen
  stale: 0, // answers to requests up to this one are dropped (the paper changed under them)
};

const bars = Array.from({ length: 10 }, (_, digit) => {
  const bar = document.createElement("div");
  bar.className = "bar";
  bar.setAttribute("role", "meter");
  bar.setAttribute("aria-label", `Digit ${digit}`);
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "100");
  const track = document.createElement("div");
  track.className = "track";
  const fill = document.createElement("div");
  fill.className = "fill";
  track.append(fill);
  const label = document.createElement("span");
  label.className = "digit";
  label.setAttribute("aria-hidden", "true");
  label.textContent = String(digit);
  bar.append(track, label);
  chart.append(bar);
  return bar;
});

// Rounded down and at most 99.9%: a probability of exactly 1 is float32 rounding, not certainty.
function percent(probability) {
  return `${(Math.min(999, Math.floor(probability * 1000)) / 10).toFixed(1)}%`;
}

function isEmpty() {
  return paper.photo === null && paper.strokes.length === 0;
}

// --- The paper -------------------------------------------------------------------------

function redraw() {
  context.fillStyle = PAPER;
  context.fillRect(0, 0, SIDE, SIDE);
  const image = paper.photo && paper.photo.image;
  if (image) {
    const scale = Math.min(SIDE / image.naturalWidth, SIDE / image.naturalHeight);
    const width = image.naturalWidth * scale;
    const height = image.naturalHeight * scale;
    context.drawImage(image, (SIDE - width) / 2, (SIDE - height) / 2, width, height);
  }
  context.strokeStyle = INK;
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
    request(() => Promise.resolve(paper.photo.file), paper.photo.file.name, final);
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
  paper.strokes = [];
  forgetPhoto();
  changed(true);
}

function forgetPhoto() {
  if (paper.photo && paper.photo.image) {
    URL.revokeObjectURL(paper.photo.image.src);
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

upload.addEventListener("change", () => {
  const file = upload.files[0];
  upload.value = "";
  if (!file) {
    return;
  }
  const image = new Image();
  const shown = (displayable) => () => {
    forgetPhoto();
    paper.photo = { file, image: displayable ? image : null };
    paper.strokes = [];
    changed(true);
    if (!displayable) {
      URL.revokeObjectURL(image.src);
      setStatus(`Your browser cannot show ${file.name}; it was sent as it is.`, "hint");
    }
  };
  image.onload = shown(true);
  image.onerror = shown(false);
  image.src = URL.createObjectURL(file);
});

// --- The request line ------------------------------------------------------------------

// Asks for a prediction of `body()` (called when sent, so it is the latest paper); `announce`
// says the drawing is done, so the answer is spoken and sent without waiting.
function request(body, name, announce) {
  line.next = { body, name, announce: announce || (line.next !== null && line.next.announce) };
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
  const { body, name, announce } = line.next;
  line.next = null;
  line.inFlight = true;
  line.lastSentAt = performance.now();
  const id = ++line.sent;
  let answer;
  try {
    answer = await predict(await body(), name);
  } catch (error) {
    answer = { error: `Could not send the image: ${error.message}` };
  }
  line.inFlight = false;
  if (id > line.shown && id > line.stale) {
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

async function predict(blob, name) {
  const form = new FormData();
  form.append("image", blob, name);
  let response;
  try {
    response = await fetch(PREDICT_URL, { method: "POST", body: form });
  } catch {
    return { error: "Cannot reach the server. Is it still running?" };
  }
  const body = await response.json().catch(() => null);
  if (response.ok && body && Array.isArray(body.predictions) && body.predictions.length > 0) {
    return { prediction: body.predictions[0] };
  }
  const message = body && body.message ? body.message : `The server answered ${response.status}.`;
  return { error: message, status: response.status };
}

// --- The result panel ------------------------------------------------------------------

function show(answer, announce) {
  const prediction = answer.prediction;
  if (prediction) {
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
    probabilityText.textContent = rejected ? "Draw a digit" : "No answer";
    showProbabilities(null);
    showModelInput(null);
    setStatus(answer.error, rejected ? "hint" : "error");
  }
}

// The answer in words, with the runner-up: a close second tells why a drawing is misread.
function reading(prediction) {
  const others = prediction.probabilities.map((probability, digit) => ({ probability, digit }));
  const second = others.filter(({ digit }) => digit !== prediction.prediction)
    .reduce((best, each) => (each.probability > best.probability ? each : best));
  return `Reads ${prediction.label}, ${percent(prediction.probability)} sure; next is ${second.digit} `
    + `at ${percent(second.probability)}.`;
}

function resetResult() {
  clearTimeout(line.timer);
  line.next = null;
  line.stale = line.sent;
  result.setAttribute("aria-busy", "false");
  predictionOutput.textContent = "–";
  probabilityText.textContent = "Draw a digit";
  showProbabilities(null);
  showModelInput(null);
  setStatus("", "hint");
}

function showProbabilities(probabilities) {
  const values = Array.isArray(probabilities) && probabilities.length === 10 ? probabilities : null;
  const winner = values ? values.indexOf(Math.max(...values)) : -1;
  bars.forEach((bar, digit) => {
    const probability = values ? values[digit] : 0;
    bar.style.setProperty("--p", String(probability));
    bar.classList.toggle("winner", digit === winner);
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

redraw();
resetResult();
