// Colormaps as 33 evenly spaced matplotlib colours (hex RGB), interpolated linearly: enough for colour bars and
// for drawing a heatmap on a canvas. Generated from matplotlib.colormaps[name](np.linspace(0, 1, 33)).
export const COLORMAPS = {
  'viridis': "440154460c5f47186a482273472c7b4536814240853e49893a528b365a8c32628d2f6a8d2c728e287a8e26818e23898d20908c1e988a1e9f8821a78428ae7f32b57a3ebc734dc26b5ec96170ce5683d34b97d83eaddc30c2df22d7e219ece41afde724",
  'magma': "0000030303110a0722120d331c1046281159350f6a430f7550127b5d177e691c807621818225818f2a809c2e7fa9327cb63679c33b74d0416fdc4869e65162ee5d5df56a5bf9795cfb8861fd9768fea671feb57cfec488fdd295fde1a3fcf0b1fbfcbf",
  'inferno': "0000030302120a0723140b36200c4a2e0a5a3c09654a0b6a570f6d63146e70196e7d1d6c892269962666a32b61af315bbb3754c73e4cd14643db4f3ae45a31eb6527f1721df68012f98e08fb9d06fbac10fabb21f8cb34f4db4bf1e968f3f689fcfea4",
  'plasma': "0c078621058f3104963f039c4c02a15901a46500a77200a87e03a78908a59511a19f1a9ba92395b22c8ebb3586c33e7fcb4777d25070d95969df6262e56c5beb7654f0804df48a47f89540faa039fcac32fdb82cfdc427fbd124f8df24f3ec26eff821",
  'cividis': "00224d00285b002d690432701a386f273d6d31436c3a486b434e6b4b546c52596c595f6d61646f686a706e70737575757c7b788481788b8778938d779b9376a39a74aba072b3a66fbbad6cc4b468ccbb63d5c25edec957e6d04fefd846f9df3afde737",
  'gray': "000000080808101010181818202020282828303030383838404040484848505050585858606060686868707070787878808080888888909090989898a0a0a0a8a8a8b0b0b0b8b8b8c0c0c0c8c8c8d0d0d0d8d8d8e0e0e0e8e8e8f0f0f0f8f8f8ffffff",
  'jet': "00007f0000a30000c80000ec0000ff0020ff0040ff0060ff0080ff00a0ff00c0ff00e0fa15ffe12fffc749ffad63ff937cff7996ff5fb0ff46caff2ce4ff12feed00ffcf00ffb100ff9400ff7600ff5900ff3b00ff1d00e80000c300009f00007f0000",
  'turbo': "30123b3929724040a14456c7466be3467ff64193fe36a8f928bbeb1ccdd717dcc21ee8af32f1974df97c6dfd628bfe4ba4fc3bb9f534cdeb34dfde36edcf39f8be39fdab33fd952bfa7d20f46516ea500dde3e08d02f04be2102a91501910b017a0402",
  'RdBu_r': "0530610d40781651901f62a72971b1347fb93f8dc0529cc86bacd084bcd99ac9e0aed3e6c2ddebd3e6f0dfecf2ebf1f4f7f6f6f9ede7fae4d7fcdcc8faccb4f7bb9ef4aa88ed9676e48065da6a55d05447c53e3cb92732aa1529930e267b062267001f",
  'coolwarm': "3a4cc0435acc4d67d75775e16182ea6c8ef1779af682a5fb8daffd98b9fea3c1feaec9fcb8cff8c2d4f3ccd8edd5dbe5dddcdbe5d8d0ecd2c4f1cbb8f4c3abf6ba9ff7b092f6a486f39879f08b6dea7d61e46e56dc5e4bd34d40c93b37be232db30326",
};

const tables = {};

function table(name) {
  if (!tables[name]) {
    const hex = COLORMAPS[name] || COLORMAPS.jet;
    const out = new Uint8Array(hex.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(2 * i, 2), 16);
    tables[name] = out;
  }
  return tables[name];
}

/** A 256-entry RGB lookup table (Uint8Array of 768) for `name`. */
export function lut(name) {
  const key = `lut:${name}`;
  if (tables[key]) return tables[key];
  const t = table(name), n = t.length / 3, out = new Uint8Array(768);
  for (let i = 0; i < 256; i++) {
    const pos = (i / 255) * (n - 1), lo = Math.floor(pos), hi = Math.min(lo + 1, n - 1), f = pos - lo;
    for (let c = 0; c < 3; c++) out[3 * i + c] = Math.round(t[3 * lo + c] * (1 - f) + t[3 * hi + c] * f);
  }
  return (tables[key] = out);
}

/** A CSS linear-gradient (left to right) of `name`, for colour bars. */
export function gradient(name, direction = "to right") {
  const t = table(name), n = t.length / 3, stops = [];
  for (let i = 0; i < n; i++) stops.push(`rgb(${t[3 * i]},${t[3 * i + 1]},${t[3 * i + 2]}) ${(100 * i / (n - 1)).toFixed(1)}%`);
  return `linear-gradient(${direction}, ${stops.join(", ")})`;
}

export const NAMES = Object.keys(COLORMAPS);
