"""Writes tests/onnx/fixtures/torch_encoder.onnx: a small BERT-style transformer encoder (token and
position embeddings, 2 post-LN layers of 4-head self-attention with a padding mask and a GELU MLP,
mean pooling, a linear head) exported by PyTorch's TorchScript ONNX exporter at opset 17, with the
batch dimension dynamic. Random weights (seed 0): the file checks how webtensor.onnx reads what
torch.onnx writes (Shape/Gather/Unsqueeze/Concat chains, Where masks, LayerNormalization, Erf).

    python tests/onnx/make_torch_fixture.py        # needs torch (not a test dependency)
"""
import io
import os

import torch


class Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(100, 32)
        self.pos = torch.nn.Parameter(torch.randn(1, 64, 32) * 0.02)
        layer = torch.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, activation="gelu", batch_first=True)
        self.enc = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.norm = torch.nn.LayerNorm(32)
        self.head = torch.nn.Linear(32, 5)

    def forward(self, ids, mask):
        x = self.emb(ids) + self.pos[:, :ids.shape[1]]
        x = self.enc(x, src_key_padding_mask=mask == 0)
        return self.head(self.norm(x).mean(1))


def main():
    torch.manual_seed(0)
    model = Encoder().eval()
    ids, mask = torch.randint(0, 100, (2, 16)), torch.ones(2, 16, dtype=torch.int64)
    f = io.BytesIO()
    torch.onnx.export(model, (ids, mask), f, input_names=["ids", "mask"], output_names=["logits"], opset_version=17,
                      dynamic_axes={"ids": {0: "batch"}, "mask": {0: "batch"}}, dynamo=False)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "torch_encoder.onnx")
    with open(path, "wb") as out:
        out.write(f.getvalue())


if __name__ == "__main__":
    main()
