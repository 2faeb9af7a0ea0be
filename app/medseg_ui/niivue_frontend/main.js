// medseg's viewer component: NiiVue (niivue.umd.js, served from this folder) inside a
// Streamlit component iframe, spoken to with Streamlit's component messages (no framework).
//
// Everything interactive stays in the browser: slice scrolling (mouse wheel), linked
// crosshairs (left click), window/level (right drag), zoom and pan, the 3D render. Only a
// left click (mouse button released) sends the crosshair's position back to the server.
// The server sends the volumes (NIfTI, base64) with an id; they are decoded again only when
// that id changes, while display settings (window, opacity, class colours and visibility)
// are applied in place.
(function () {
  "use strict";

  const lib = window.niivue;
  const where = document.getElementById("where");
  const problem = document.getElementById("problem");
  const canvas = document.getElementById("gl");
  let nv = null;
  let shownIds = null;       // "imageId|labelsId" currently loaded
  let loading = null;        // promise of the current load
  let latest = null;         // args of the last render message
  let lastLocation = null;
  let clicks = 0;
  let show3D = true;

  function send(type, data) {
    window.parent.postMessage(Object.assign({ isStreamlitMessage: true, type: type },
      data || {}), "*");
  }

  function fail(message) {
    problem.textContent = message;
    problem.style.display = "block";
    window.medsegViewerError = message;
  }

  function bufferOf(b64) {
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  // the label lookup table: medseg's colours (those of the DICOM SEG), hidden classes clear
  function labelLut(classes, visible) {
    const lut = { R: [0], G: [0], B: [0], A: [0], I: [0], labels: ["background"] };
    for (const c of classes) {
      lut.R.push(c.rgb[0]); lut.G.push(c.rgb[1]); lut.B.push(c.rgb[2]);
      lut.A.push(visible.indexOf(c.value) >= 0 ? 255 : 0);
      lut.I.push(c.value); lut.labels.push(c.name);
    }
    return lut;
  }

  function fmt(x) { return Number(x).toFixed(1); }

  function onLocation(data) {
    lastLocation = data;
    const vals = data.values || [];
    let text = "x " + fmt(data.mm[0]) + "  y " + fmt(data.mm[1]) + "  z " + fmt(data.mm[2]) +
      " mm";
    if (vals.length > 0) text += "   value " + Number(vals[0].value).toPrecision(4);
    if (vals.length > 1 && latest) {
      const v = Math.round(vals[1].value);
      const c = latest.classes.find(function (k) { return k.value === v; });
      text += "   " + (v === 0 ? "background" : (c ? c.name : "label " + v));
    }
    where.textContent = text;
    window.medsegLocation = data;  // for tests and debugging
  }

  // the voxel under the crosshair as an index of the file's own array (NiiVue's vox is on
  // its RAS-reoriented copy; img2RASstart/step map that back to the stored order)
  function nativeVoxel(image, rasVox) {
    if (!image || !image.img2RASstep || !image.img2RASstart) return null;
    const st = image.img2RASstart, sp = image.img2RASstep, d = image.hdr.dims;
    let idx = 0;
    for (let a = 0; a < 3; a++) idx += st[a] + rasVox[a] * sp[a];
    const nx = d[1], ny = d[2];
    return [idx % nx, Math.floor(idx / nx) % ny, Math.floor(idx / (nx * ny))];
  }

  function report() {
    if (!lastLocation) return;
    const vals = lastLocation.values || [];
    clicks += 1;
    send("streamlit:setComponentValue", {
      dataType: "json",
      value: {
        click: clicks,
        mm: Array.from(lastLocation.mm).slice(0, 3),
        voxel: vals.length > 0 ? nativeVoxel(nv.volumes[0], Array.from(vals[0].vox)) : null,
        image_value: vals.length > 0 ? vals[0].value : null,
        label_value: vals.length > 1 ? Math.round(vals[1].value) : null,
      },
    });
  }

  function setMode(zoom) {
    document.getElementById("mode-scroll").setAttribute("aria-pressed", String(!zoom));
    document.getElementById("mode-zoom").setAttribute("aria-pressed", String(zoom));
    // pan mode: the wheel zooms and the right button pans; else the wheel scrolls slices
    // and the right button sets the window/level
    nv.setDragMode(zoom ? "pan" : "contrast");
  }

  function setLayout() {
    document.getElementById("layout").textContent = show3D ? "3D on" : "3D off";
    nv.opts.multiplanarShowRender = show3D ? lib.SHOW_RENDER.ALWAYS : lib.SHOW_RENDER.NEVER;
    nv.setSliceType(lib.SLICE_TYPE.MULTIPLANAR);
  }

  function applyDisplay(args) {
    if (!nv || nv.volumes.length === 0) return;
    const img = nv.volumes[0];
    img.cal_min = args.window[0];
    img.cal_max = args.window[1];
    if (nv.volumes.length > 1) {
      nv.volumes[1].setColormapLabel(labelLut(args.classes, args.visible));
      nv.setOpacity(1, args.opacity);
    }
    nv.updateGLVolume();
  }

  async function load(args) {
    nv.volumes.slice().forEach(function (v) { nv.removeVolume(v); });
    const image = await lib.NVImage.loadFromUrl({
      url: "image.nii.gz", name: "image.nii.gz", buffer: bufferOf(args.image),
      colormap: "gray", opacity: 1,
    });
    nv.addVolume(image);
    if (args.labels) {
      const labels = await lib.NVImage.loadFromUrl({
        url: "labels.nii.gz", name: "labels.nii.gz", buffer: bufferOf(args.labels),
        opacity: args.opacity,
      });
      labels.setColormapLabel(labelLut(args.classes, args.visible));
      nv.addVolume(labels);
    }
    shownIds = args.image_id + "|" + (args.labels_id || "");
  }

  async function render(args) {
    latest = args;
    document.getElementById("wrap").style.height = (args.height - 40) + "px";
    canvas.style.height = "100%";
    send("streamlit:setFrameHeight", { height: args.height });
    try {
      if (!nv) {
        nv = new lib.Niivue({
          backColor: [0, 0, 0, 1], crosshairColor: [1, 0.85, 0.1, 1], show3Dcrosshair: true,
          isRadiologicalConvention: !!args.radiological, multiplanarForceRender: true,
          dragAndDropEnabled: false, isColorbar: false, loadingText: "loading",
        });
        await nv.attachToCanvas(canvas);
        nv.onLocationChange = onLocation;
        setLayout();
        setMode(false);
        canvas.addEventListener("pointerup", function (e) {
          if (e.button === 0) report();
        });
      }
      const ids = args.image_id + "|" + (args.labels_id || "");
      if (ids !== shownIds) {
        loading = load(args);
        await loading;
      }
      applyDisplay(args);
      nv.resizeListener();
      window.medsegViewerReady = ids;
    } catch (err) {
      fail("The viewer could not start: " + (err && err.message ? err.message : err) +
        " (it needs WebGL2).");
    }
  }

  document.getElementById("mode-scroll").addEventListener("click", function () { setMode(false); });
  document.getElementById("mode-zoom").addEventListener("click", function () { setMode(true); });
  document.getElementById("reset").addEventListener("click", function () {
    if (!nv) return;
    nv.scene.pan2Dxyzmm = [0, 0, 0, 1];
    if (latest) applyDisplay(latest);
    nv.drawScene();
  });
  document.getElementById("layout").addEventListener("click", function () {
    show3D = !show3D;
    if (nv) setLayout();
  });

  window.addEventListener("message", function (event) {
    const data = event.data || {};
    if (data.type === "streamlit:render") render(data.args);
  });
  send("streamlit:componentReady", { apiVersion: 1 });
})();
