import uWS from 'uWebSockets.js';

/**
 * The uWebSockets.js module, after checking that its native binary loaded. The package falls back to a
 * JavaScript imitation with a printed warning when the binary does not match the platform (or when
 * UWS_USE_FALLBACK is set); that fallback is broken (HttpRequest.getQuery throws), so the server refuses it.
 */
export function loadNativeUws(): typeof uWS {
  const native = typeof (uWS as unknown as { getParts?: unknown }).getParts === 'function';
  if (!native) {
    throw new Error(
      'the native uWebSockets.js binary did not load (the package switched to its JavaScript fallback). ' +
        `Node ${process.version} (ABI ${process.versions.modules}) on ${process.platform}-${process.arch} ` +
        'needs one of the binaries shipped in node_modules/uWebSockets.js/dist; unset UWS_USE_FALLBACK if set.',
    );
  }
  return uWS;
}

export type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, us_listen_socket } from 'uWebSockets.js';
