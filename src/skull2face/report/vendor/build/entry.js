// The parts of three.js the report's 3D view uses (src/skull2face/report/viewer.js), exposed as
// one global, S2F3D, so the page can inline them as a classic script (no module loading, no network).
import {
  WebGLRenderer, Scene, PerspectiveCamera, AmbientLight, DirectionalLight, HemisphereLight, Box3,
  Vector3, Color, MeshStandardMaterial, DoubleSide, Sphere, REVISION,
} from 'three';
import { GLTFLoader } from 'three/examples/jsm/loaders/GLTFLoader.js';
import { OrbitControls } from 'three/examples/jsm/controls/OrbitControls.js';

globalThis.S2F3D = {
  WebGLRenderer, Scene, PerspectiveCamera, AmbientLight, DirectionalLight, HemisphereLight, Box3,
  Vector3, Color, MeshStandardMaterial, DoubleSide, Sphere, REVISION, GLTFLoader, OrbitControls,
};
