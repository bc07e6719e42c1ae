"""Sizing, over plain numbers known at preview: will a model fit the GPUs a pod gets (the model
catalog, the fit rules, the memory LoRA slots take), and how long a cold replica takes to serve
(the budget every probe, wait and cooldown derives from)."""
