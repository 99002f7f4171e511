"""Keep the compared part of each official output: every 4th pixel of the logits and
probabilities (both axes), the full argmax map and the class embeddings; for the NACLIP run with
PAMR only the probabilities and the argmax map (its text and pre-PAMR logits equal naclip.npz)."""
import numpy as np

for method in ("maskclip", "sclip", "clearclip", "naclip"):
    run = np.load(f"/tmp/i14/out/{method}.npz")
    np.savez_compressed(
        f"{method}.npz",
        text_embeds=run["text_embeds"].astype(np.float32),
        logits=run["slide_logits"][:, ::4, ::4].astype(np.float32),
        probs=run["probs"][:, ::4, ::4].astype(np.float32),
        argmax=run["argmax"].astype(np.uint8),
    )
run = np.load("/tmp/i14/out/naclip_pamr.npz")
np.savez_compressed("naclip_pamr.npz", probs=run["probs"][:, ::4, ::4].astype(np.float32),
                    argmax=run["argmax"].astype(np.uint8))
