// RolloN pages: the little they need from JavaScript. Every page works without it;
// with it, the till turns to "Payé" by itself and the wallet scans QR codes.
"use strict";

// -- till: wait for the payment (long-poll), then show "Payé" --------------------------------
function watchRequest(box) {
  const url = box.dataset.statusUrl;
  let known = box.dataset.status;
  let failures = 0;

  function show(answer) {
    known = answer.status;
    box.dataset.status = known;
    box.textContent = answer.label;
    box.classList.toggle("paid", answer.paid);
    box.classList.toggle("closed", answer.closed && !answer.paid);
    document.body.classList.toggle("is-paid", answer.paid);
    document.body.classList.toggle("is-closed", answer.closed);
  }

  async function poll() {
    while (known === "open") {
      try {
        const response = await fetch(url + "?known=" + encodeURIComponent(known), {
          headers: { Accept: "application/json" },
          credentials: "same-origin",
          cache: "no-store",
        });
        if (response.redirected || response.status === 401 || response.status === 403) {
          window.location.reload(); // the session ended: the page says so
          return;
        }
        if (!response.ok) throw new Error("status " + response.status);
        show(await response.json());
        failures = 0;
      } catch (error) {
        failures += 1; // network hiccup or restart: back off, keep trying
        await new Promise((resolve) => setTimeout(resolve, Math.min(10000, 500 * 2 ** failures)));
      }
    }
  }
  poll();
}

// -- wallet: scan a QR code with the camera where the browser can ----------------------------
function setUpScanner(root) {
  const button = root.querySelector("[data-scan-start]");
  const stop = root.querySelector("[data-scan-stop]");
  const video = root.querySelector("video");
  const target = document.getElementById(root.dataset.target);
  const unsupported = root.querySelector("[data-scan-unsupported]");
  const canScan = "BarcodeDetector" in window && navigator.mediaDevices &&
    typeof navigator.mediaDevices.getUserMedia === "function";
  if (!canScan) {
    unsupported.hidden = false;
    return;
  }
  button.hidden = false;
  let stream = null;
  let timer = null;

  function halt() {
    if (timer !== null) clearInterval(timer);
    timer = null;
    if (stream !== null) stream.getTracks().forEach((track) => track.stop());
    stream = null;
    video.hidden = true;
    stop.hidden = true;
    button.hidden = false;
  }

  button.addEventListener("click", async () => {
    try {
      const detector = new window.BarcodeDetector({ formats: ["qr_code"] });
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
      video.srcObject = stream;
      video.hidden = false;
      stop.hidden = false;
      button.hidden = true;
      await video.play();
      timer = setInterval(async () => {
        const codes = await detector.detect(video).catch(() => []);
        if (codes.length > 0 && codes[0].rawValue) {
          target.value = codes[0].rawValue;
          halt();
          target.form.requestSubmit();
        }
      }, 250);
    } catch (error) {
      halt(); // no camera, or permission refused: pasting still works
      button.hidden = true;
      unsupported.hidden = false;
    }
  });
  stop.addEventListener("click", halt);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-status-url]").forEach(watchRequest);
  document.querySelectorAll("[data-scanner]").forEach(setUpScanner);
});
