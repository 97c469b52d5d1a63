/* A whole study on the page: a dropped or chosen folder, several files or one .zip go to
   /api/study (with thumbnails), with the upload's progress and then an "analysing" state; the
   answer shows the study's headline and reason, and for each series a strip of its slices in
   anatomical order, each bordered in the colour of its answer. A click on a slice asks
   /api/study/slice for it larger, with its heat map and box; "Download structured report" asks
   /api/study/sr. The server never gets the files' names: each part is sent as "upload-N"; the page
   alone maps the server's "upload N" back to the name the person knows. */
(function () {
  "use strict";

  var page = window.BrainTumourPage;
  if (!page) { return; }
  var $ = page.$;
  var app = $("app"), study = $("study"), progress = $("progress");
  var maxParts = parseInt(app.dataset.maxParts, 10) || 64;
  var ORDER = [];  // the model's classes in its order, for the legend
  try { ORDER = JSON.parse(app.dataset.classes || "[]"); } catch (e) { ORDER = []; }
  var UNCERTAIN = "#b45309", NOT_ANALYSED = "#94a3b8";
  var ORDERING = { "position": "ordered by position", "instance number": "ordered by instance number",
    "file order": "in the order sent (no position or number)", "volume": "a NIfTI volume, feet to head" };
  var ZIP_TYPES = ["application/zip", "application/x-zip-compressed", "application/x-zip"];

  /* What was sent last: the parts of the form (for the slice view and the structured report). */
  var last = null, sliceToken = 0;

  function isZip(file) {
    return !!file && (/\.zip$/i.test(file.name || "") || ZIP_TYPES.indexOf(file.type) >= 0);
  }

  function hiddenName(path) {
    return (path || "").split("/").some(function (part) { return part.charAt(0) === "." || part === "__MACOSX"; });
  }

  /* Every file in dropped folders (recursively), as File objects; hidden files left out. */
  function readEntries(entries) {
    var found = [];
    function walk(entry) {
      if (!entry) { return Promise.resolve(); }
      if (entry.isFile) {
        return new Promise(function (resolve, reject) { entry.file(resolve, reject); }).then(function (f) {
          if (!hiddenName(entry.fullPath)) { found.push(f); }
        });
      }
      var reader = entry.createReader(), children = [];
      return new Promise(function (resolve, reject) {
        (function more() {  // readEntries gives a folder's entries a batch at a time
          reader.readEntries(function (batch) {
            if (!batch.length) { resolve(); return; }
            children = children.concat(batch);
            more();
          }, reject);
        })();
      }).then(function () { return Promise.all(children.map(walk)); });
    }
    return Promise.all(entries.map(walk)).then(function () { return found; });
  }

  /* ------------------------------------------------------------------ a .zip made in the page */

  /* More files than the form may hold go as one .zip (stored, not compressed: DICOM pixels
     hardly compress and the server reads it the same). */
  var CRC = (function () {
    var t = new Uint32Array(256);
    for (var n = 0; n < 256; n++) {
      var c = n;
      for (var k = 0; k < 8; k++) { c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; }
      t[n] = c >>> 0;
    }
    return t;
  })();
  function crc32(bytes) {
    var c = 0xffffffff;
    for (var i = 0; i < bytes.length; i++) { c = CRC[(c ^ bytes[i]) & 0xff] ^ (c >>> 8); }
    return (c ^ 0xffffffff) >>> 0;
  }
  function zipOf(files) {
    return Promise.all(files.map(function (f) { return f.arrayBuffer(); })).then(function (buffers) {
      var parts = [], central = [], offset = 0;
      buffers.forEach(function (buf, i) {
        var data = new Uint8Array(buf), name = new TextEncoder().encode("f" + (i + 1));
        var crc = crc32(data), head = new DataView(new ArrayBuffer(30)), dir = new DataView(new ArrayBuffer(46));
        head.setUint32(0, 0x04034b50, true); head.setUint16(4, 20, true);
        head.setUint32(14, crc, true); head.setUint32(18, data.length, true); head.setUint32(22, data.length, true);
        head.setUint16(26, name.length, true);
        dir.setUint32(0, 0x02014b50, true); dir.setUint16(4, 20, true); dir.setUint16(6, 20, true);
        dir.setUint32(16, crc, true); dir.setUint32(20, data.length, true); dir.setUint32(24, data.length, true);
        dir.setUint16(28, name.length, true); dir.setUint32(42, offset, true);
        parts.push(head, name, data);
        central.push(dir, name);
        offset += 30 + name.length + data.length;
      });
      var size = central.reduce(function (n, p) { return n + p.byteLength; }, 0);
      var end = new DataView(new ArrayBuffer(22));
      end.setUint32(0, 0x06054b50, true);
      end.setUint16(8, buffers.length, true); end.setUint16(10, buffers.length, true);
      end.setUint32(12, size, true); end.setUint32(16, offset, true);
      return new Blob(parts.concat(central, [end]), { type: "application/zip" });
    });
  }

  /* -------------------------------------------------------------------------- sending */

  function suffix(name) {
    var m = /(\.nii\.gz|\.[A-Za-z0-9]{1,8})$/.exec(name || "");
    return m ? m[1].toLowerCase() : "";
  }

  /* The form's parts: each file as "upload-N" (its suffix kept), or one .zip of them all. */
  function partsOf(files) {
    if (files.length <= maxParts - 8) {
      return Promise.resolve(files.map(function (f, i) { return [f, "upload-" + (i + 1) + suffix(f.name)]; }));
    }
    return zipOf(files).then(function (blob) { return [[blob, "upload-1.zip"]]; });
  }

  function formOf(parts, fields) {
    var form = new FormData();
    parts.forEach(function (p) { form.append("file", p[0], p[1]); });
    Object.keys(fields).forEach(function (k) { form.append(k, fields[k]); });
    form.append("tta", $("tta").checked ? "true" : "false");
    return form;
  }

  /* The server names files "upload N" (and a .zip's entries "upload N entry M"): the person reads
     the names they know. A .zip made by the page names its entries by the files' order too. */
  function named(message, files, packed) {
    return (message || "").replace(/upload (\d+)(?: entry (\d+))?/g, function (all, n, m) {
      var f = packed ? files[parseInt(m || "0", 10) - 1] : files[parseInt(n, 10) - 1];
      if (packed && !m) { return "the files"; }
      if (!f) { return all; }
      return !packed && m ? f.name + ", entry " + m : f.name;
    });
  }

  function studyError(status, body, files, packed) {
    var m = named(body && body.error, files, packed);
    if (status === 400 && /^no DICOM or NIfTI image was found/.test(m)) {
      m += ". Send a study's DICOM files (or NIfTI volumes), a folder of them, or one .zip.";
    }
    if (status === 413 && !m) {
      return "These files are too large together: one upload is at most " +
        Math.round(page.maxBytes / 1048576) + " MB. Send one series at a time.";
    }
    if (status === 413 && /^the upload is larger/.test(m)) {
      return "These files come to more than one upload may hold (" + Math.round(page.maxBytes / 1048576) +
        " MB). Send one series at a time, or a .zip of it.";
    }
    return page.humanError(status, m);
  }

  function describe(files) {
    var bytes = files.reduce(function (n, f) { return n + f.size; }, 0);
    var what = files.length === 1 ? files[0].name : files.length + " files";
    return { what: what, bytes: bytes };
  }

  function takeStudy(files, fromFolder) {
    if (page.isBusy()) { return; }
    page.clearError();
    page.clearAnswer();  // no earlier answer beside this study's progress, or its error
    files = files.filter(function (f) { return !hiddenName(f.webkitRelativePath || f.name); });
    var box = $("preview-box"), cap = $("preview-caption");
    $("preview").hidden = true;
    $("preview").removeAttribute("src");
    if (!files.length) {
      box.hidden = true;
      page.showError(fromFolder ? "That folder holds no files." : "That was not a file. Drop DICOM files, a folder or a .zip.");
      return;
    }
    var d = describe(files);
    box.hidden = false;
    cap.textContent = (fromFolder ? "A folder: " : "") + d.what + " \u00b7 " + page.readable(d.bytes) + " \u00b7 a study";
    if (d.bytes > page.maxBytes) {
      page.showError("These files come to " + page.readable(d.bytes) + ", over the " +
        Math.round(page.maxBytes / 1048576) + " MB that one upload may hold. Send one series at a time, " +
        "or answer the study with \u201cbraintumor study\u201d on the command line.");
      return;
    }
    page.setBusy(true);
    study.dataset.state = "working";
    var started = performance.now(), packed = files.length > maxParts - 8;
    partsOf(files).then(function (parts) {
      last = { files: files, parts: parts, packed: packed, answer: null };
      upload("api/study", formOf(parts, { thumbnails: "true" }), d, started);
    }, function () {
      page.setBusy(false);
      page.showError("The files could not be read in this browser.");
    });
  }

  function showProgress(value) {
    progress.hidden = false;
    if (value === null) { progress.removeAttribute("value"); } else { progress.value = value; }
  }
  function hideProgress() { progress.hidden = true; progress.value = 0; }

  function upload(url, form, d, started) {
    var sent = last, xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("Accept", "application/json");
    var analysing = "Analysing every slice of " + d.what + "\u2026";
    page.setStatus("Uploading " + d.what + " (" + page.readable(d.bytes) + ")\u2026");
    showProgress(0);
    xhr.upload.onprogress = function (e) {
      if (!e.lengthComputable) { return; }
      showProgress(e.loaded / e.total);
      page.setStatus("Uploading " + d.what + ": " + Math.round(100 * e.loaded / e.total) + "%");
    };
    xhr.upload.onload = function () {  // all sent: the server reads and answers every slice
      showProgress(null);
      page.setStatus(analysing);
      study.dataset.state = "analysing";
    };
    xhr.onload = function () {
      var body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = {}; }
      hideProgress();
      page.setBusy(false);
      if (xhr.status !== 200) {
        last = null;
        study.dataset.state = "error";
        page.showError(studyError(xhr.status, body, sent.files, sent.packed));
        return;
      }
      sent.answer = body;
      render(body, performance.now() - started);
    };
    xhr.onerror = function () {
      hideProgress();
      page.setBusy(false);
      last = null;
      study.dataset.state = "error";
      page.showError("Could not reach the server. Check that it is still running, then try again.");
    };
    xhr.send(form);
  }

  /* ------------------------------------------------------------------------ the answer */

  function kindColour(answer) {
    if (answer.kind === "uncertain") { return UNCERTAIN; }
    if (answer.kind === "not analysed" || !answer.label) { return NOT_ANALYSED; }
    return page.colour(answer.label);
  }

  /* The mark of one slice: its class, uncertain, or not analysed (blank, refused, unreadable). */
  function markOf(s) {
    if (s.blank || s.error || s.decision === "rejected") { return "not-analysed"; }
    if (s.decision === "uncertain") { return "uncertain"; }
    return "classified";
  }

  function sliceWords(s) {
    var bits = ["Slice " + s.index];
    if (s.instance_number != null) { bits.push("instance " + s.instance_number); }
    if (s.frame != null) { bits.push("frame " + s.frame); }
    if (s.position_mm != null) { bits.push(s.position_mm + " mm"); }
    var mark = markOf(s), what;
    if (mark === "not-analysed") {
      what = s.blank ? "not analysed (blank)" : "not analysed" + (s.reason || s.error ? ": " + (s.reason || s.error) : "");
    } else if (mark === "uncertain") {
      what = "uncertain" + (s.prediction_set && s.prediction_set.length ?
        ", could be " + s.prediction_set.map(page.name).join(" or ") : "");
    } else {
      what = page.name(s.label) + (s.confidence != null ? " " + page.percent(s.confidence) : "");
    }
    return bits.join(", ") + ": " + what;
  }

  function render(answer, roundTripMs) {
    page.setStatus("");
    $("result").hidden = true;
    study.hidden = false;
    var a = answer.answer || {};
    $("study-headline").textContent = a.headline || "";
    $("study-swatch").style.background = kindColour(a);
    study.dataset.kind = a.kind || "";
    $("study-reason").textContent = a.reason || "";
    $("study-timing").textContent = (roundTripMs / 1000).toFixed(1) + " s";
    var facts = [answer.n_series + (answer.n_series === 1 ? " series" : " series"),
                 answer.n_slices + (answer.n_slices === 1 ? " slice" : " slices")];
    (answer.skipped || []).forEach(function (s) {
      facts.push(s.files + (s.files === 1 ? " file" : " files") + " left out: " + s.reason);
    });
    $("study-facts").textContent = facts.join(" \u00b7 ");
    var dicom = (answer.series || []).some(function (s) { return s.kind === "dicom"; });
    $("sr-row").hidden = !dicom;
    $("sr-status").textContent = "";

    var holder = $("study-series"), marks = {};
    holder.textContent = "";
    (answer.series || []).forEach(function (s) {
      holder.appendChild(renderSeries(s, marks, answer.n_series > 1));
    });
    renderLegend(marks);
    study.dataset.state = "done";
    if (window.matchMedia && window.matchMedia("(max-width: 879px)").matches) {
      $("result-title").scrollIntoView({ block: "start" });  // on a phone the answer is below the drop zone
    }
  }

  /* A series: its heading, its answer (when the study has several: one series' answer is the
     study's), and the strip of its slices. */
  function renderSeries(s, marks, withAnswer) {
    var sec = document.createElement("section");
    sec.className = "series";
    sec.dataset.series = s.series;
    var h = document.createElement("h3");
    var title = ["Series " + s.series];
    if (s.modality) { title.push(s.modality); }
    if (s.series_number != null) { title.push("series number " + s.series_number); }
    title.push(s.n_slices + (s.n_slices === 1 ? " slice" : " slices") + ", " + (ORDERING[s.ordering] || s.ordering));
    h.textContent = title.join(" \u00b7 ");
    sec.appendChild(h);
    var p = document.createElement("p");
    p.className = "series-answer";
    var sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = kindColour(s.answer || {});
    var strong = document.createElement("strong");
    strong.textContent = (s.answer && s.answer.headline) || "";
    p.append(sw, strong, document.createTextNode(" " + ((s.answer && s.answer.reason) || "")));
    if (withAnswer) { sec.appendChild(p); }

    var rank = {};
    (s.most_suspicious || []).forEach(function (m, i) { rank[m.index] = i + 1; });
    var strip = document.createElement("ol");
    strip.className = "strip";
    strip.setAttribute("aria-label", "Series " + s.series + ", its slices in anatomical order");
    (s.slices || []).forEach(function (sl) {
      var li = document.createElement("li"), mark = markOf(sl);
      li.className = "slice " + mark;
      li.dataset.index = sl.index;
      li.dataset.mark = mark;
      marks[mark] = true;
      if (mark === "classified") {
        li.style.setProperty("--mark", page.colour(sl.label));
        li.dataset.label = sl.label;
        marks["class:" + sl.label] = true;
      }
      var btn = document.createElement("button");
      btn.type = "button";
      var words = sliceWords(sl);
      if (rank[sl.index]) {
        li.classList.add("suspicious");
        marks.suspicious = true;
        words += " (most suspicious: " + rank[sl.index] + " of " + s.most_suspicious.length + ")";
      }
      btn.title = words;
      btn.setAttribute("aria-label", words);
      var img = document.createElement("img");
      img.alt = "";
      if (sl.thumbnail) { img.src = sl.thumbnail; }
      btn.appendChild(img);
      if (mark !== "classified") {
        var badge = document.createElement("span");
        badge.className = "badge";
        badge.setAttribute("aria-hidden", "true");
        badge.textContent = mark === "uncertain" ? "?" : "\u00d7";
        btn.appendChild(badge);
      }
      if (rank[sl.index]) {
        var star = document.createElement("span");
        star.className = "star";
        star.setAttribute("aria-hidden", "true");
        star.textContent = "\u2605";
        btn.appendChild(star);
      }
      var no = document.createElement("span");
      no.className = "slice-no";
      no.textContent = sl.index;
      btn.appendChild(no);
      btn.addEventListener("click", function () { openSlice(s, sl, words); });
      li.appendChild(btn);
      strip.appendChild(li);
    });
    sec.appendChild(strip);
    return sec;
  }

  /* The legend explains the marks on screen, and only those. */
  function renderLegend(marks) {
    var list = $("legend-class-list");
    list.textContent = "";
    ORDER.forEach(function (c) {
      if (!marks["class:" + c.label]) { return; }
      var item = document.createElement("span");
      item.className = "legend-class";
      var sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = c.colour;
      item.append(sw, document.createTextNode(" " + c.name));
      list.appendChild(item);
    });
    $("legend-classes").hidden = !marks.classified;
    $("legend-uncertain").hidden = !marks.uncertain;
    $("legend-not-analysed").hidden = !marks["not-analysed"];
    $("legend-suspicious").hidden = !marks.suspicious;
  }

  /* ------------------------------------------------------------------- one slice, larger */

  function openSlice(s, sl, words) {
    if (!last) { return; }
    var view = $("slice-view"), token = ++sliceToken;
    $("slice-view-title").textContent = "Series " + s.series + ", slice " + sl.index;
    $("slice-view-answer").textContent = words;
    ["slice-box-original", "slice-box-heat"].forEach(function (id) { $(id).hidden = true; });
    $("slice-original").src = sl.thumbnail || "";
    $("slice-under").src = sl.thumbnail || "";
    $("slice-heat").hidden = true;
    $("slice-heat").removeAttribute("src");
    $("slice-original-caption").textContent = "The slice";
    $("slice-heat-caption").textContent = "Drawing the heat map\u2026";
    $("slice-view-status").textContent = "";
    view.dataset.state = "working";
    if (!view.open) {
      if (view.showModal) { view.showModal(); } else { view.setAttribute("open", ""); }
    }
    var form = formOf(last.parts, { series: String(s.series), index: String(sl.index),
                                    cam_method: $("cam_method").value });
    fetch("api/study/slice", { method: "POST", body: form, headers: { "Accept": "application/json" } })
      .then(function (resp) {
        return resp.json().then(function (b) { return { status: resp.status, body: b }; },
                                function () { return { status: resp.status, body: {} }; });
      })
      .then(function (r) {
        if (token !== sliceToken) { return; }  // another slice was chosen meanwhile
        if (r.status !== 200) {
          view.dataset.state = "error";
          $("slice-heat-caption").textContent = "No heat map";
          $("slice-view-status").textContent = studyError(r.status, r.body, last.files, last.packed);
          return;
        }
        renderSlice(r.body);
      })
      .catch(function () {
        if (token !== sliceToken) { return; }
        view.dataset.state = "error";
        $("slice-view-status").textContent = "Could not reach the server; the slice could not be shown larger.";
      });
  }

  function renderSlice(answer) {
    var view = $("slice-view"), rejected = answer.decision === "rejected";
    $("slice-original").src = answer.original;
    $("slice-under").src = answer.original;
    var heat = $("slice-heat");
    if (!rejected && answer.heatmap_png) {
      page.colourHeatMap(answer.original, answer.heatmap_png, heat, function () {
        $("slice-heat-caption").textContent = "The heat map could not be drawn in this browser";
      });
      heat.hidden = false;
      $("slice-heat-caption").textContent = answer.cam_caption || page.camLabel(answer.cam_method);
    } else {
      heat.hidden = true;
      $("slice-heat-caption").textContent = rejected ? "No heat map: not analysed" : "No heat map";
    }
    page.placeBox($("slice-box-original"), answer.box, answer.image_size);
    page.placeBox($("slice-box-heat"), rejected ? null : answer.box, answer.image_size);
    $("slice-original-caption").textContent = answer.box ? "The slice, with the tumour box the model found" : "The slice";
    var lead = answer.headline || page.name(answer.label);
    var conf = answer.decision === "classified" && answer.confidence != null ? " (" + page.percent(answer.confidence) + ")" : "";
    $("slice-view-status").textContent = lead + conf + (answer.reason ? ". " + answer.reason : "");
    view.dataset.state = "done";
  }

  /* ------------------------------------------------------------ the structured report */

  function downloadSr() {
    if (!last) { return; }
    $("sr-status").textContent = "Preparing the structured report\u2026";
    $("download-sr").disabled = true;
    var files = last.files, packed = last.packed;
    fetch("api/study/sr", { method: "POST", body: formOf(last.parts, {}) })
      .then(function (resp) {
        if (resp.status !== 200) {
          return resp.json().then(function (b) { throw new Error(studyError(resp.status, b, files, packed)); },
                                  function () { throw new Error(studyError(resp.status, {}, files, packed)); });
        }
        var cd = resp.headers.get("Content-Disposition") || "", m = /filename="([^"]+)"/.exec(cd);
        return resp.blob().then(function (blob) { return { blob: blob, name: m ? m[1] : "study-sr.dcm" }; });
      })
      .then(function (r) {
        var url = URL.createObjectURL(r.blob);
        var a = document.createElement("a");
        a.href = url;
        a.download = r.name;
        document.body.appendChild(a);
        a.click();
        a.remove();
        setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
        $("sr-status").textContent = "Structured report downloaded (" + r.name + ").";
      })
      .catch(function (err) { $("sr-status").textContent = "No report: " + err.message; })
      .then(function () { $("download-sr").disabled = false; });
  }

  var folder = $("folder");
  $("choose-folder").addEventListener("click", function () { folder.click(); });
  folder.addEventListener("change", function () {
    var files = Array.prototype.slice.call(folder.files || []);
    folder.value = "";
    if (files.length || folder.webkitdirectory) { takeStudy(files, true); }
  });
  $("download-sr").addEventListener("click", downloadSr);

  page.isZip = isZip;
  page.readEntries = readEntries;
  page.takeStudy = takeStudy;
})();
