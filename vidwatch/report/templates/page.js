(function () {
  "use strict";
  var video = document.getElementById("player");
  var scenes = Array.prototype.slice.call(document.querySelectorAll("[data-scene]"));

  function seek(t) {
    if (!video || isNaN(t)) return;
    video.currentTime = t;
    video.scrollIntoView({block: "nearest"});
  }

  document.addEventListener("click", function (e) {
    var jump = e.target.closest("[data-seek-scene]");
    if (jump) {
      var scene = document.querySelector('[data-scene="' + jump.getAttribute("data-seek-scene") + '"]');
      if (scene) { e.preventDefault(); seek(parseFloat(scene.getAttribute("data-seek"))); }
      return;
    }
    var el = e.target.closest("[data-seek]");
    if (el) seek(parseFloat(el.getAttribute("data-seek")));
  });
  document.addEventListener("keydown", function (e) {
    if ((e.key === "Enter" || e.key === " ") && e.target.matches("[data-seek][role=button]")) {
      e.preventDefault();
      seek(parseFloat(e.target.getAttribute("data-seek")));
    }
  });

  // /jobs/{id}?t=<seconds>: play from there (a search hit's scene). Browsers that block
  // playback with sound get it muted; the source's #t= fragment starts it there without us.
  if (video && video.hasAttribute("data-start")) {
    var start = parseFloat(video.getAttribute("data-start"));
    var begin = function () {
      if (isNaN(start)) return;
      if (Math.abs(video.currentTime - start) > 0.25) video.currentTime = start;
      var played = video.play();
      if (played && played.catch) {
        played.catch(function () { video.muted = true; video.play().catch(function () {}); });
      }
    };
    if (video.readyState >= 1) begin(); else video.addEventListener("loadedmetadata", begin, {once: true});
  }

  // Timeline spans: placed from data attributes (no inline styles: the page's CSP forbids them).
  document.querySelectorAll(".span[data-left]").forEach(function (s) {
    s.style.left = s.getAttribute("data-left") + "%";
    s.style.width = s.getAttribute("data-width") + "%";
  });

  // The frames' image switch: original, objects, masks, faces.
  document.querySelectorAll('input[name="kind"]').forEach(function (radio) {
    radio.addEventListener("change", function () {
      if (!radio.checked) return;
      document.querySelectorAll("#frames img").forEach(function (img) {
        var url = img.getAttribute("data-src-" + radio.value);
        if (url) img.src = url;
      });
    });
  });

  // The scene under the playhead.
  function clock(t) {
    var m = Math.floor(t / 60), s = Math.floor(t % 60);
    return m + ":" + (s < 10 ? "0" : "") + s;
  }
  if (video) {
    var now = document.getElementById("now"), nowScene = document.getElementById("now-scene");
    video.addEventListener("timeupdate", function () {
      var t = video.currentTime;
      if (now) now.textContent = clock(t);
      scenes.forEach(function (el) {
        var on = t >= parseFloat(el.getAttribute("data-seek")) - 1e-3 &&
          t < parseFloat(el.getAttribute("data-end")) - 1e-3;
        el.classList.toggle("active", on);
        if (on && nowScene) nowScene.textContent = String(parseInt(el.getAttribute("data-scene"), 10) + 1);
      });
    });
  }

  // A running job: follow its status, reload into the results when it ends.
  var statusUrl = document.body.getAttribute("data-status-url");
  if (statusUrl) {
    var poll = function () {
      fetch(statusUrl, {credentials: "same-origin", cache: "no-store"})
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (s) {
          if (!s) return;
          var p = (s.progress || {});
          var bar = document.getElementById("progress");
          if (bar) bar.value = p.percent || 0;
          var pct = document.getElementById("percent");
          if (pct) pct.textContent = (p.percent || 0) + "%";
          var stage = document.getElementById("stage");
          if (stage) stage.textContent = s.stage;
          var frames = document.getElementById("frames-done");
          if (frames) frames.textContent = (p.frames_done || 0) + (p.frames_total ? " of " + p.frames_total : "");
          var state = document.getElementById("state");
          if (state) state.textContent = s.state;
          if (s.state === "completed" || s.state === "failed") { window.location.reload(); return; }
          window.setTimeout(poll, 1500);
        })
        .catch(function () { window.setTimeout(poll, 3000); });
    };
    window.setTimeout(poll, 1000);
  }
})();
