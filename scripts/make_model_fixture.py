"""Save the tiny model folder tests/fixtures/model_v1 (a folder saved before the modality table).

Run once with the code of commit f38e726; `tests/test_model_fixture.py` loads the folder with today's code
and checks the logits it recorded. Kept so the fixture can be re-made the same way for a later format.

Usage: PYTHONPATH=src python scripts/make_model_fixture.py tests/fixtures/model_v1
"""
import sys, torch
from pathlib import Path
from safetensors.torch import save_file
from groundinggpt.models import GroundingGPTConfig, GroundingGPTForCausalLM
from groundinggpt.models.configuration_groundinggpt import tiny_text_config, tiny_vision_config

out = Path(sys.argv[1])
torch.manual_seed(0)
cfg = GroundingGPTConfig(
    text_config=tiny_text_config(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64),
    vision_config=tiny_vision_config(hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, image_size=16, patch_size=8, projection_dim=16),
    video_config=dict(num_frames=2, frame_token_pool=1, num_query_tokens=2, qformer_hidden_size=16,
                      qformer_num_layers=1, qformer_num_heads=2, qformer_intermediate_size=32),
    audio_config=dict(encoder=dict(embed_dim=16, depth=1, num_heads=2, out_dim=16, patch_kernel=8, patch_stride=8),
                      num_clips=2, num_mel_bins=8, target_frames=16, max_clips=2, num_query_tokens=2,
                      qformer_hidden_size=16, qformer_num_layers=1, qformer_num_heads=2, qformer_intermediate_size=32),
    image_token_pool=1,
)
model = GroundingGPTForCausalLM(cfg).eval()
with torch.no_grad():  # random, not zero, so every tensor matters for the logits
    for p in model.parameters():
        p.normal_(0, 0.2)
model.save_pretrained(out)
c = cfg
ids = [1, 9] + [c.image_token_id] * c.image_seq_length + [10] + [c.video_token_id] * c.video_seq_length \
    + [11] + [c.audio_token_id] * c.audio_seq_length + [12, 13]
inputs = {
    "input_ids": torch.tensor([ids]),
    "pixel_values": torch.randn(1, 3, 16, 16),
    "pixel_values_videos": torch.randn(1, 2, 3, 16, 16),
    "input_features": torch.randn(1, 2, 1, 8, 16),
}
with torch.no_grad():
    logits = model(**inputs).logits
inputs["expected_logits"] = logits
save_file({k: v.contiguous() for k, v in inputs.items()}, str(out / "inputs_and_logits.safetensors"))
print(logits.shape, logits.abs().mean())
