// `oncePerFrame(fn)`: a function that asks for `fn()` on the next animation frame; calls made
// before that frame are coalesced into the one call (redraws and predictions follow input
// events at most once per frame).
export function oncePerFrame(fn) {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; fn(); });
  };
}
