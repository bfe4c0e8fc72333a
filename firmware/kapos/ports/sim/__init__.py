"""The simulated board: a twin for every HAL interface.

Inputs accept injected values (`inject(...)`), outputs record what they were asked to do
and render it for real: the display through luma onto a luma.emulator device, the printer
through python-escpos into ESC/POS bytes. Faults can be switched on to test the runtime.
"""
