"""The one training engine every system uses: Lightning fit with exact resume and the resume
guard (:mod:`.fit`), LR schedules (:mod:`.schedules`), accelerator/devices/precision and
seeds (:mod:`.hardware`). Atomic writes are :mod:`molfm.atomic` (the data layer needs them
too, and sits below this one)."""
