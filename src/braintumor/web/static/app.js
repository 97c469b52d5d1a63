/* The drag-and-drop page: send a scan to /api/predict, show the answer, the chart and the heat map.
   A folder, several files or a .zip go to study.js (a whole study); this file hands it what both
   share through window.BrainTumourPage.
   No inline scripts (the Content-Security-Policy forbids them); nothing is fetched from elsewhere. */
(function () {
  "use strict";

  var app = document.getElementById("app");
  /* The model's classes as the server renders them: [{label, name, colour}] in the model's order. */
  var CLASSES = {};
  (function () {
    var list = [];
    try { list = JSON.parse(app.dataset.classes || "[]"); } catch (e) { list = []; }
    list.forEach(function (c) { CLASSES[c.label] = c; });
  })();
  var maxBytes = parseInt(app.dataset.maxBytes, 10) || 16 * 1024 * 1024;
  var $ = function (id) { return document.getElementById(id); };
  var dropzone = $("dropzone"), fileInput = $("file");
  var statusBox = $("status"), errorBox = $("error"), result = $("result");
  var chart = null, previewUrl = null, busy = false;
  var lastFile = null, lastAnswerId = null;  // what feedback refers to (kept in this page only)
  var sampleTruth = null;  // the true class of a sample scan being analysed

  function name(label) { return CLASSES[label] ? CLASSES[label].name : label; }
  function colour(label) { return CLASSES[label] ? CLASSES[label].colour : "#64748b"; }
  /* A heat map method's label, from the server-rendered menu of methods. */
  function camLabel(method) {
    var opts = $("cam_method").options;
    for (var i = 0; i < opts.length; i++) {
      if (opts[i].value === method) { return opts[i].textContent; }
    }
    return method || "Heat map";
  }
  function percent(p) { return (100 * p).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1) + "%"; }

  function setStatus(text) { statusBox.textContent = text; statusBox.hidden = !text; }

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = false;
    setStatus("");
  }

  function clearError() { errorBox.hidden = true; errorBox.textContent = ""; }

  /* A server message such as "scan 3.png: the image is damaged (...)" in words for a person: the
     file's name (as the server repeats it: its base name, sanitised) stays as it is, and what
     follows it starts with a capital. */
  function humanError(status, message) {
    var m = message || "", named = /^([^:]{1,100}\.[\w.]{1,12}): (.*)$/.exec(m);
    var capital = function (t) { return t ? t.charAt(0).toUpperCase() + t.slice(1) : t; };
    m = named ? named[1] + ": " + capital(named[2]) : capital(m);
    if (status === 413) {
      return "This file is too large: the limit is " + Math.round(maxBytes / 1048576) + " MB. Send a smaller image.";
    }
    if (status === 415) {
      return "This file cannot be read as a scan. " + (m || "Send a JPEG, PNG, BMP, TIFF, DICOM or NIfTI file.");
    }
    if (status >= 500) {
      return "Something went wrong on the server. Please try again; if it keeps happening, tell whoever runs this service.";
    }
    return m || "The server could not use this file.";
  }

  function readable(bytes) {
    return bytes < 1024 * 1024 ? Math.max(1, Math.round(bytes / 1024)) + " KB" : (bytes / 1048576).toFixed(1) + " MB";
  }

  function showPreview(file) {
    var box = $("preview-box"), img = $("preview"), cap = $("preview-caption");
    if (previewUrl) { URL.revokeObjectURL(previewUrl); previewUrl = null; }
    box.hidden = false;
    cap.textContent = file.name + " \u00b7 " + readable(file.size);
    if (/^image\/(jpeg|png|bmp|gif|webp)$/.test(file.type)) {
      previewUrl = URL.createObjectURL(file);
      img.hidden = false;
      img.onerror = function () { img.hidden = true; };  // a damaged file: no broken picture
      img.src = previewUrl;
    } else {
      img.hidden = true;
      img.removeAttribute("src");
      cap.textContent += " \u00b7 no preview for this kind of file; the server reads it";
    }
  }

  function send(file, truth) {
    if (busy) { return; }
    sampleTruth = truth || null;
    clearError();
    if (!file) { showError("That was not a file. Drop an image file from your computer."); return; }
    showPreview(file);
    if (file.size === 0) { clearAnswer(); showError("This file is empty."); return; }
    if (file.size > maxBytes) {
      clearAnswer();
      showError(humanError(413, ""));
      return;
    }
    var form = new FormData();
    form.append("file", file, file.name);
    options(form);

    busy = true;
    dropzone.classList.add("busy");
    result.dataset.state = "working";
    setStatus("Analysing " + file.name + "\u2026");
    var started = performance.now();

    fetch("api/predict", { method: "POST", body: form, headers: { "Accept": "application/json" } })
      .then(function (resp) {
        return resp.json().then(
          function (body) { return { status: resp.status, body: body }; },
          function () { return { status: resp.status, body: {} }; }
        );
      })
      .then(function (r) {
        if (r.status !== 200) {
          clearAnswer();
          result.dataset.state = "error";
          showError(humanError(r.status, r.body && r.body.error));
          return;
        }
        lastFile = file;
        render(r.body, performance.now() - started);
      })
      .catch(function () {
        clearAnswer();
        result.dataset.state = "error";
        showError("Could not reach the server. Check that it is still running, then try again.");
      })
      .then(function () {
        busy = false;
        dropzone.classList.remove("busy");
        fileInput.value = "";
      });
  }

  /* An error leaves no earlier answer on screen: the result is hidden until the next one. */
  function clearAnswer() {
    result.hidden = true;
    $("study").hidden = true;
    lastFile = null;
    lastAnswerId = null;
    $("similar-list").textContent = "";
  }

  /* The answer leads with what it is: the class (classified), "Uncertain: refer" with the classes
     it could be, or "Not analysed" with the reason and nothing else (no probability, chart, heat
     map or similar cases). The same headline is in the JSON, the PDF and the command line. */
  function render(answer, roundTripMs) {
    setStatus("");
    $("study").hidden = true;
    result.hidden = false;
    var top = answer.label, decision = answer.decision || "classified";
    var rejected = decision === "rejected";
    result.dataset.decision = decision;
    $("label").textContent = answer.headline || name(top);
    $("label-swatch").style.background = decision === "classified" ? colour(top) : (rejected ? "#94a3b8" : "#b45309");
    $("answer-conf").hidden = decision !== "classified";
    $("confidence").textContent = answer.confidence == null ? "" : percent(answer.confidence);
    $("could-be").hidden = !answer.could_be;
    $("could-be").textContent = answer.could_be ? "It could be " + answer.could_be + "." : "";
    $("reason").textContent = answer.reason || "";
    var t = answer.timing_ms || {};
    $("timing").textContent = Math.round(t.total || 0) + " ms on the server, " +
      Math.round(roundTripMs) + " ms in all";
    $("timing").title = "On the server: reading the scan " + Math.round(t.preprocess || 0) + " ms, the model " +
      Math.round(t.predict || 0) + " ms, encoding the images " + Math.round(t.encode || 0) + " ms";

    renderDecision(answer);
    renderTruth(answer);
    renderVotes(answer);
    $("analysis").hidden = rejected;
    if (!rejected) {
      renderChart(answer.predictions);
      renderList(answer.predictions, top);
    }

    $("original").src = answer.original;
    $("under").src = answer.original;
    var heat = $("gradcam");
    $("heat-figure").hidden = rejected;
    if (!rejected && (answer.gradcam || answer.heatmap_png)) {
      if (answer.gradcam) {
        heat.src = answer.gradcam;
      } else {
        heat.removeAttribute("src");
        colourHeatMap(answer.original, answer.heatmap_png, heat);
      }
      heat.hidden = false;
      $("gradcam-caption").textContent = answer.cam_caption || camLabel(answer.cam_method);
    } else {
      heat.hidden = true;
      heat.removeAttribute("src");
      $("gradcam-caption").textContent = rejected ? "" : "No heat map (switched off in Options)";
    }
    renderBox(answer);
    renderSimilar(answer);
    resetFeedback(answer);
    $("report-status").textContent = "";
    /* Only an analysed scan has a report to download; only a heat map has an opacity. */
    $("report-row").hidden = rejected;
    $("opacity-row").hidden = rejected || heat.hidden;
    applyOpacity();
    result.dataset.state = "done";
    if (window.matchMedia && window.matchMedia("(max-width: 879px)").matches) {
      $("result-title").scrollIntoView({ block: "start" });  // on a phone the answer is below the scan
    }
  }

  /* The heat map over the scan, drawn here as the server would draw it
     (braintumor.inference.cam.render_overlay): the grey levels of heatmap_png through the jet
     colour map, half and half with the scan, scaled so that the brightest value is 255. The
     server then sends two small grey PNGs instead of a large coloured one. */
  function jet(v, k) {  // the level of one colour (k: 3 red, 2 green, 1 blue) for grey level v
    return Math.floor(255 * Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v / 255 - k))) + 0.5);
  }
  var JET = [];
  for (var level = 0; level < 256; level++) { JET.push([jet(level, 3), jet(level, 2), jet(level, 1)]); }
  function loadImage(src) {
    return new Promise(function (resolve, reject) {
      var im = new Image();
      im.onload = function () { resolve(im); };
      im.onerror = reject;
      im.src = src;
    });
  }
  function pixelsOf(im) {
    var c = document.createElement("canvas");
    c.width = im.naturalWidth;
    c.height = im.naturalHeight;
    var g = c.getContext("2d");
    g.drawImage(im, 0, 0);
    return g.getImageData(0, 0, c.width, c.height);
  }
  function colourHeatMap(originalUrl, heatUrl, img, onFail) {
    var token = (img.heatToken || 0) + 1;
    img.heatToken = token;
    Promise.all([loadImage(originalUrl), loadImage(heatUrl)]).then(function (ims) {
      if (token !== img.heatToken) { return; }  // a newer answer is being drawn in this picture
      var scan = pixelsOf(ims[0]), heat = pixelsOf(ims[1]);
      var n = scan.width * scan.height, mix = new Float32Array(3 * n), max = 0, i, k;
      for (i = 0; i < n; i++) {
        var c = JET[heat.data[4 * i]], grey = scan.data[4 * i] / 255;
        for (k = 0; k < 3; k++) {
          var x = 0.5 * c[k] / 255 + 0.5 * grey;
          mix[3 * i + k] = x;
          if (x > max) { max = x; }
        }
      }
      for (i = 0; i < n; i++) {
        for (k = 0; k < 3; k++) { scan.data[4 * i + k] = Math.floor(255 * mix[3 * i + k] / max); }
        scan.data[4 * i + 3] = 255;
      }
      var canvas = document.createElement("canvas");
      canvas.width = scan.width;
      canvas.height = scan.height;
      canvas.getContext("2d").putImageData(scan, 0, 0);
      img.src = canvas.toDataURL("image/png");
    }).catch(function () {
      if (onFail) { onFail(); return; }
      $("gradcam-caption").textContent = "The heat map could not be drawn in this browser";
    });
  }

  /* The tumour box ([x0, y0, x1, y1] in pixels of the uploaded image) over both pictures, placed
     in percent of the picture so that it follows any display size. */
  function placeBox(el, box, size) {
    if (!box || !size || !size[0] || !size[1]) { el.hidden = true; return; }
    el.style.left = (100 * box[0] / size[0]) + "%";
    el.style.top = (100 * box[1] / size[1]) + "%";
    el.style.width = (100 * (box[2] - box[0]) / size[0]) + "%";
    el.style.height = (100 * (box[3] - box[1]) / size[1]) + "%";
    el.title = "Where the model places the tumour";
    el.hidden = false;
  }
  function renderBox(answer) {
    var size = answer.image_size, box = answer.box;
    ["box-original", "box-gradcam"].forEach(function (id) { placeBox($(id), box, size); });
    $("original-caption").textContent = box ? "Original, with the tumour box the model found" : "Original";
  }

  /* The most similar indexed scans, most similar first (the server's order), each with how close
     it is and whether it is the same picture or a neighbouring slice; the notice says when the
     model trained on this picture (or on its neighbouring slice). A click shows a scan larger. */
  function closeWords(c) {
    return c >= 90 ? "very close" : c >= 50 ? "close" : "loosely similar";
  }
  function renderSimilar(answer) {
    var box = $("similar-box"), list = $("similar-list");
    list.textContent = "";
    var items = answer.decision === "rejected" ? [] : (answer.similar || []);
    box.hidden = items.length === 0;
    /* The legend explains the borders that are on screen, and only those. */
    var matches = items.map(function (s) { return s.match; });
    $("legend-copy").hidden = matches.indexOf("same picture") < 0;
    $("legend-neighbour").hidden = matches.indexOf("neighbouring slice") < 0;
    $("near-copy").hidden = !answer.seen_before_notice;
    $("near-copy").textContent = answer.seen_before_notice || "";
    items.forEach(function (s) {
      var li = document.createElement("li");
      if (s.match) { li.className = s.match === "same picture" ? "copy" : "neighbour"; }
      var text = name(s.label) + " \u00b7 " + (s.match === "same picture" ? "same picture" :
        closeWords(s.closeness) + (s.match ? " \u00b7 " + s.match : "")) + (s.match && s.trained ? " (trained on)" : "");
      var title = "Closer than " + s.closeness + "% of the index's scans are to their nearest neighbour";
      if (s.thumbnail) {
        var btn = document.createElement("button");
        btn.type = "button";
        btn.className = "case";
        btn.title = title;
        var img = document.createElement("img");
        img.src = s.thumbnail;
        img.alt = "Indexed scan " + s.id + ": " + name(s.label);
        btn.appendChild(img);
        btn.addEventListener("click", function () { showCase(s, text); });
        li.appendChild(btn);
      }
      var cap = document.createElement("span");
      cap.className = "similar-cap";
      cap.textContent = text;
      cap.title = title;
      cap.style.borderColor = colour(s.label);
      li.appendChild(cap);
      list.appendChild(li);
    });
  }

  function showCase(s, text) {
    var view = $("case-view");
    $("case-view-img").src = s.thumbnail;
    $("case-view-img").alt = "Indexed scan " + s.id;
    $("case-view-caption").textContent = s.id + ": " + text;
    if (view.showModal) { view.showModal(); } else { view.setAttribute("open", ""); }
  }

  /* Several models served: each one's vote and how many agree with the combined answer. */
  function renderVotes(answer) {
    var box = $("votes");
    var members = answer.members || [];
    box.hidden = members.length < 2;
    box.textContent = "";
    if (box.hidden) { return; }
    var head = document.createElement("strong");
    head.textContent = answer.agreement + " of " + members.length + " models agree. ";
    box.appendChild(head);
    box.appendChild(document.createTextNode(members.map(function (m) {
      return m.name + ": " + name(m.label) + " (" + percent(m.confidence) + ")";
    }).join(" \u00b7 ")));
  }

  /* A sample scan's true class beside what the answer decided: a classified answer agrees or
     differs; an uncertain one was referred (and the truth is, or is not, among the classes it
     could be); a rejected one was not analysed. */
  function renderTruth(answer) {
    var box = $("truth");
    if (!sampleTruth) { box.hidden = true; box.textContent = ""; return; }
    var truth = name(sampleTruth), decision = answer.decision || "classified", kind, text;
    if (decision === "uncertain") {
      var among = (answer.prediction_set || []).indexOf(sampleTruth) >= 0;
      kind = "referred";
      text = "Sample scan: referred; the true class is " + truth + (among ?
        ", one of the classes it could be." : ", not one of the classes it could be.");
    } else if (decision === "rejected") {
      kind = "referred";
      text = "Sample scan: not analysed; the true class is " + truth + ".";
    } else {
      kind = answer.label === sampleTruth ? "agrees" : "differs";
      text = "Sample scan: its true class is " + truth + ". " +
        (kind === "agrees" ? "The model's answer agrees." : "The model's answer differs.");
    }
    box.textContent = text;
    box.className = "truth " + kind;
    box.dataset.outcome = kind;
    box.hidden = false;
  }

  /* "Download report": the same scan and options sent to api/report; the PDF is saved by the
     browser (the scan's file name is not sent as a title, so it is not printed). */
  function options(form) {
    form.append("explain", $("explain").checked ? "true" : "false");
    form.append("overlay", "false");  // the heat map comes as grey levels; colourHeatMap draws it
    form.append("tta", $("tta").checked ? "true" : "false");
    form.append("cam_method", $("cam_method").value);
    var slice = $("slice").value.trim();
    if (slice !== "") { form.append("slice", slice); }
    if ($("similar") && $("similar").value.trim() !== "") { form.append("similar", $("similar").value.trim()); }
    return form;
  }

  function downloadReport() {
    if (!lastFile) { return; }
    var form = new FormData();
    form.append("file", lastFile, lastFile.name);
    options(form);
    $("report-status").textContent = "Preparing the report\u2026";
    $("download-report").disabled = true;
    fetch("api/report", { method: "POST", body: form })
      .then(function (resp) {
        if (resp.status !== 200) {
          return resp.json().then(function (b) { throw new Error(humanError(resp.status, b && b.error)); },
                                  function () { throw new Error(humanError(resp.status, "")); });
        }
        return resp.blob();
      })
      .then(function (blob) {
        var url = URL.createObjectURL(blob);
        var a = document.createElement("a");
        a.href = url;
        a.download = "braintumor-report.pdf";
        document.body.appendChild(a);
        a.click();
        a.remove();
        setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
        $("report-status").textContent = "Report downloaded.";
      })
      .catch(function (err) { $("report-status").textContent = "No report: " + err.message; })
      .then(function () { $("download-report").disabled = false; });
  }

  /* "Try a sample scan": one of the scans shipped with the tool, at random. */
  function trySample() {
    if (busy) { return; }
    clearError();
    fetch("api/samples").then(function (r) { return r.json(); }).then(function (body) {
      var list = body.samples || [];
      if (!list.length) { showError("This server has no sample scans."); return; }
      var pick = list[Math.floor(Math.random() * list.length)];
      return fetch(pick.url).then(function (r) { return r.blob(); }).then(function (blob) {
        send(new File([blob], pick.name, { type: blob.type || "image/jpeg" }), pick.label);
      });
    }).catch(function () { showError("Could not load a sample scan from the server."); });
  }

  function renderDecision(answer) {
    var box = $("decision");
    box.className = "decision";
    box.hidden = true;
    box.textContent = "";
    if (answer.decision === "uncertain") {
      box.textContent = "The model cannot tell with enough certainty. Have the scan read by a radiologist.";
      box.classList.add("uncertain");
      box.hidden = false;
    } else if (answer.decision === "rejected") {
      box.textContent = "The model gives no answer for this image.";
      box.classList.add("rejected");
      box.hidden = false;
    }
  }

  function renderChart(predictions) {
    var labels = predictions.map(function (p) { return name(p.label); });
    var values = predictions.map(function (p) { return p.probability; });
    var colours = predictions.map(function (p) { return colour(p.label); });
    if (typeof Chart === "undefined") { return; }  // the list below still shows the numbers
    if (chart) {
      chart.data.labels = labels;
      chart.data.datasets[0].data = values;
      chart.data.datasets[0].backgroundColor = colours;
      chart.update();
      return;
    }
    chart = new Chart($("chart"), {
      type: "doughnut",
      data: { labels: labels, datasets: [{ data: values, backgroundColor: colours, borderWidth: 2, borderColor: "#ffffff" }] },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        cutout: "60%",
        animation: { duration: 300 },
        plugins: {
          legend: { position: "right", labels: { boxWidth: 14, font: { size: 13 } } },
          tooltip: { callbacks: { label: function (ctx) { return " " + ctx.label + ": " + percent(ctx.parsed); } } }
        }
      }
    });
  }

  function renderList(predictions, top) {
    var ul = $("probs");
    ul.textContent = "";
    predictions.forEach(function (p) {
      var li = document.createElement("li");
      if (p.label === top) { li.className = "top"; }
      var sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = colour(p.label);
      var n = document.createElement("span");
      n.className = "pname";
      n.textContent = name(p.label);
      var bar = document.createElement("span");
      bar.className = "bar";
      var fill = document.createElement("span");
      fill.style.width = (100 * p.probability).toFixed(1) + "%";
      fill.style.background = colour(p.label);
      bar.appendChild(fill);
      var v = document.createElement("span");
      v.className = "pval";
      v.textContent = percent(p.probability);
      li.append(sw, n, bar, v);
      ul.appendChild(li);
    });
  }

  /* "Was this right?": shown only where the server collects feedback. The scan is sent again only
     when the person ticks "keep this scan"; the server checks it is the same file. */
  var feedbackForm = $("feedback");

  function resetFeedback(answer) {
    if (!feedbackForm) { return; }
    lastAnswerId = answer.id || null;
    feedbackForm.hidden = !lastAnswerId;
    feedbackForm.reset();
    $("fb-send").disabled = false;
    $("fb-status").textContent = "";
    var radios = feedbackForm.querySelectorAll("input[name=fb-label]");
    Array.prototype.forEach.call(radios, function (r) { r.checked = false; });  // the person's own answer
  }

  function sendFeedback(e) {
    e.preventDefault();
    var chosen = feedbackForm.querySelector("input[name=fb-label]:checked");
    if (!chosen) { $("fb-status").textContent = "Choose what the scan really shows, or \u201cNot sure\u201d."; return; }
    var keep = $("fb-keep").checked;
    var form = new FormData();
    form.append("id", lastAnswerId);
    form.append("label", chosen.value);
    form.append("comment", $("fb-comment").value);
    form.append("keep_image", keep ? "true" : "false");
    if (keep && lastFile) { form.append("file", lastFile, lastFile.name); }
    $("fb-send").disabled = true;
    $("fb-status").textContent = "Sending\u2026";
    fetch("api/feedback", { method: "POST", body: form, headers: { "Accept": "application/json" } })
      .then(function (resp) {
        return resp.json().then(function (body) { return { status: resp.status, body: body }; },
                                function () { return { status: resp.status, body: {} }; });
      })
      .then(function (r) {
        if (r.status !== 201) {
          $("fb-send").disabled = false;
          $("fb-status").textContent = "Not saved: " + humanError(r.status, r.body && r.body.error);
          return;
        }
        $("fb-status").textContent = "Thank you: saved" + (r.body.image_kept ? ", with the scan." : ", without the scan.");
      })
      .catch(function () {
        $("fb-send").disabled = false;
        $("fb-status").textContent = "Could not reach the server; the feedback was not saved.";
      });
  }

  if (feedbackForm) { feedbackForm.addEventListener("submit", sendFeedback); }

  function applyOpacity() {
    var v = parseInt($("opacity").value, 10);
    $("gradcam").style.opacity = String(v / 100);
    $("opacity-value").textContent = v + "%";
  }

  // Drag and drop
  ["dragenter", "dragover"].forEach(function (type) {
    dropzone.addEventListener(type, function (e) {
      e.preventDefault();
      dropzone.classList.add("over");
    });
  });
  ["dragleave", "dragend"].forEach(function (type) {
    dropzone.addEventListener(type, function () { dropzone.classList.remove("over"); });
  });
  /* One ordinary file is a scan (/api/predict); a folder, several files or a .zip are a study
     (study.js). */
  function take(files, fromFolder) {
    var pictures = files.filter(function (f) { return /^image\/(jpeg|png|bmp|gif|webp|tiff)$/.test(f.type); });
    if (!fromFolder && files.length > 1 && pictures.length === files.length) {
      showError("Please drop one image at a time: several files are read as one study of DICOM or NIfTI files.");
      return;
    }
    if (page.takeStudy && (fromFolder || files.length > 1 || (files.length === 1 && page.isZip(files[0])))) {
      page.takeStudy(files, fromFolder);
      return;
    }
    if (files.length > 1) { showError("Please drop one scan at a time."); return; }
    send(files[0], null);
  }
  dropzone.addEventListener("drop", function (e) {
    e.preventDefault();
    dropzone.classList.remove("over");
    var dt = e.dataTransfer, files = Array.prototype.slice.call((dt && dt.files) || []);
    /* A dropped folder is only in the items' entries, and only during this event. */
    var entries = Array.prototype.map.call((dt && dt.items) || [], function (item) {
      return item.kind === "file" && item.webkitGetAsEntry ? item.webkitGetAsEntry() : null;
    });
    if (page.readEntries && entries.some(function (en) { return en && en.isDirectory; })) {
      if (busy) { return; }
      page.readEntries(entries).then(function (found) { take(found, true); }, function () {
        showError("The dropped folder could not be read. Choose it with “Choose a study folder” instead.");
      });
      return;
    }
    take(files, false);
  });
  // A file dropped beside the drop zone should not make the browser leave the page.
  window.addEventListener("dragover", function (e) { e.preventDefault(); });
  window.addEventListener("drop", function (e) { e.preventDefault(); });

  fileInput.addEventListener("change", function () {
    if (fileInput.files && fileInput.files.length) { take(Array.prototype.slice.call(fileInput.files), false); }
  });
  $("opacity").addEventListener("input", applyOpacity);
  /* Another heat-map method: the same scan is asked again at once (no need to drop it again). */
  $("cam_method").addEventListener("change", function () {
    if (lastFile && !busy && !result.hidden) { send(lastFile, sampleTruth); }
  });
  $("try-sample").addEventListener("click", trySample);
  $("download-report").addEventListener("click", downloadReport);

  /* What study.js shares with the single-scan page. */
  var page = window.BrainTumourPage = {
    $: $, name: name, colour: colour, percent: percent, readable: readable, camLabel: camLabel,
    setStatus: setStatus, showError: showError, clearError: clearError, clearAnswer: clearAnswer,
    humanError: humanError, colourHeatMap: colourHeatMap, placeBox: placeBox, maxBytes: maxBytes,
    classes: function () { return CLASSES; },
    isBusy: function () { return busy; },
    setBusy: function (on) { busy = on; dropzone.classList.toggle("busy", on); if (!on) { fileInput.value = ""; } },
    take: take
  };
})();
