"""Training the emulator (PyTorch Lightning): training-set files and crops, cube symmetries, losses, the
LightningModule and DataModule, the ``emulator fit`` entry point and held-out evaluation.

Submodules are imported on use (``from emulator.training.module import FieldEmulator``), so importing this package
does not load Lightning.
"""
