// skull2face report: the interactive 3D view (see report/scene3d.py). Reads the scene's layers
// (#s2f-scene-meta) and its glTF binary (#s2f-scene-glb, base64), draws them with the inlined
// three.js (global S2F3D) and wires the toggles, the face opacity slider and the view buttons.
// window.s2fViewer exposes the state for tests: ready, drawn, visible(name), view(name).
(function () {
  'use strict';
  var status = document.getElementById('s2f-status');
  function fail(msg) {
    if (status) { status.textContent = '3D view unavailable: ' + msg; }
    window.s2fViewer = { ready: false, error: msg };
  }
  var T = window.S2F3D;
  if (!T) { fail('viewer script missing'); return; }
  var meta = JSON.parse(document.getElementById('s2f-scene-meta').textContent);
  var b64 = document.getElementById('s2f-scene-glb').textContent.trim();
  var raw = atob(b64);
  var bytes = new Uint8Array(raw.length);
  for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }

  var canvas = document.getElementById('s2f-canvas');
  var box = document.getElementById('s2f-viewer');
  var renderer;
  try {
    renderer = new T.WebGLRenderer({ canvas: canvas, antialias: true, preserveDrawingBuffer: true });
  } catch (e) {
    fail('WebGL is not available in this browser');
    return;
  }
  renderer.setPixelRatio(window.devicePixelRatio || 1);
  var scene = new T.Scene();
  scene.background = new T.Color('#20242a');
  var up = new T.Vector3().fromArray(meta.up);
  var camera = new T.PerspectiveCamera(30, 1, 1, 5000);
  camera.up.copy(up);
  var head = new T.DirectionalLight('#ffffff', 2.2);
  camera.add(head);
  head.position.set(0.3, 0.6, 1);
  scene.add(camera);
  scene.add(new T.HemisphereLight('#ffffff', '#444444', 1.0));
  var controls = new T.OrbitControls(camera, canvas);
  controls.enableDamping = false;

  var objects = {};
  var materials = {};
  var centre = new T.Vector3();
  var radius = 100;
  var state = { ready: false, drawn: 0, view: null };

  function draw() {
    renderer.render(scene, camera);
    state.drawn += 1;
  }
  function resize() {
    var w = Math.max(box.clientWidth, 1), h = Math.max(box.clientHeight, 1);
    renderer.setSize(w, h, false);
    camera.aspect = w / h;
    camera.updateProjectionMatrix();
    draw();
  }
  function setView(name) {
    var front = new T.Vector3().fromArray(meta.front);
    var left = new T.Vector3().fromArray(meta.left);
    var dir = name === 'side' ? left : name === 'three-quarter'
      ? front.clone().add(left).normalize() : front;
    var dist = radius / Math.sin((camera.fov / 2) * Math.PI / 180) * 0.8;
    camera.position.copy(centre).addScaledVector(dir, dist);
    camera.near = dist / 20;
    camera.far = dist * 4;
    camera.updateProjectionMatrix();
    controls.target.copy(centre);
    controls.update();
    state.view = name;
    draw();
  }
  function setVisible(name, on) {
    if (objects[name]) { objects[name].visible = on; draw(); }
  }
  function setErrorColour(name, on) {
    var m = materials[name];
    if (!m) { return; }
    m.vertexColors = on;
    m.color.set(on ? '#ffffff' : m.userData.plain);
    m.needsUpdate = true;
    draw();
  }

  new T.GLTFLoader().parse(bytes.buffer, '', function (gltf) {
    var bounds = new T.Box3();
    meta.layers.forEach(function (layer) {
      var obj = gltf.scene.getObjectByName(layer.name);
      if (!obj) { return; }
      var mat = new T.MeshStandardMaterial({
        color: layer.error ? '#ffffff' : layer.colour, roughness: 0.75, metalness: 0.0,
        side: T.DoubleSide, vertexColors: !!layer.error,
        transparent: layer.opacity < 1, opacity: layer.opacity, depthWrite: layer.opacity >= 1,
      });
      mat.userData.plain = layer.colour;
      obj.traverse(function (o) {
        if (o.isMesh) {
          o.geometry.computeVertexNormals();
          o.material = mat;
          o.renderOrder = layer.name === 'face' ? 2 : 1;
        }
      });
      obj.visible = layer.visible !== false;
      objects[layer.name] = obj;
      materials[layer.name] = mat;
      bounds.expandByObject(obj);
    });
    scene.add(gltf.scene);
    var sphere = bounds.getBoundingSphere(new T.Sphere());
    centre.copy(sphere.center);
    radius = Math.max(sphere.radius, 1);
    if (status) { status.textContent = ''; }
    state.ready = true;
    controls.addEventListener('change', draw);
    window.addEventListener('resize', resize);
    resize();
    setView('front');
    box.setAttribute('data-ready', 'true');
  }, function (err) {
    fail('cannot read the embedded scene (' + (err && err.message ? err.message : err) + ')');
  });

  document.querySelectorAll('#view3d input.layer').forEach(function (el) {
    el.addEventListener('change', function () { setVisible(el.dataset.layer, el.checked); });
  });
  document.querySelectorAll('#view3d input.errcolour').forEach(function (el) {
    el.addEventListener('change', function () { setErrorColour(el.dataset.layer, el.checked); });
  });
  var slider = document.getElementById('s2f-opacity');
  if (slider) {
    slider.addEventListener('input', function () {
      var m = materials.face;
      if (!m) { return; }
      var a = parseFloat(slider.value);
      m.opacity = a;
      m.transparent = a < 1;
      m.depthWrite = a >= 1;
      m.needsUpdate = true;
      draw();
    });
  }
  document.querySelectorAll('#view3d button[data-view]').forEach(function (el) {
    el.addEventListener('click', function () { setView(el.dataset.view); });
  });

  window.s2fViewer = {
    state: state,
    get ready() { return state.ready; },
    visible: function (name) { return !!(objects[name] && objects[name].visible); },
    setView: setView,
    draw: draw,
  };
}());
