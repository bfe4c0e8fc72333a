"""kapos: firmware for a DIY Raspberry Pi card terminal.

Layers (imports point down only; tools/check_layers.py enforces it):
  compat, errors                      L0  runtime shim, error hierarchy
  card, host, security, nfc, hal      L1  portable protocols and HAL interfaces
  core                                L2  the transaction state machine (pure)
  drivers                             L3  chip logic over injected buses
  ports.<runtime>                     L4  linux / sim implementations of the HAL
  app                                 L5  runtime loop, screens, receipts, config
  cli, boards                         L6  composition
"""

__version__ = "0.1.0"
