// The UCI digits as build.py writes them (data/digits.json describes data/digits.bin):
// uint8 pixel counts 0..16 of the train then the test images (64 per image, rows of 8),
// then the train then the test labels. Pixels are scaled to [0, 1] (count / 16) as in
// Python's webtensor.datasets.digits().

/**
 * Fetch and decode the data set. Resolves to {xTrain, yTrain, xTest, yTest, nTrain, nTest}:
 * x* Float32Array (n * 64, values count / 16), y* Int32Array (n) of labels 0..9.
 * Rejects when a file is missing or the binary's size does not match its description.
 */
export async function loadDigits(jsonUrl) {
  const meta = await (await fetchOk(jsonUrl)).json();
  const bytes = new Uint8Array(await (await fetchOk(new URL(meta.file, new URL(jsonUrl, location.href)))).arrayBuffer());
  const { n_train: nTrain, n_test: nTest, max_pixel: maxPixel } = meta;
  const n = nTrain + nTest;
  if (bytes.length !== n * 65 || bytes.length !== meta.bytes) {
    throw new Error(`digits: ${meta.file} has ${bytes.length} bytes, expected ${n * 65}`);
  }
  const pixels = (from, count) => Float32Array.from(bytes.subarray(from * 64, (from + count) * 64), (p) => p / maxPixel);
  const labels = (from, count) => Int32Array.from(bytes.subarray(n * 64 + from, n * 64 + from + count));
  return { nTrain, nTest, xTrain: pixels(0, nTrain), yTrain: labels(0, nTrain), xTest: pixels(nTrain, nTest), yTest: labels(nTrain, nTest) };
}

async function fetchOk(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`fetching ${url}: HTTP ${r.status}`);
  return r;
}
