"""Rendering shared by the linux and sim ports (luma drawing, ESC/POS, PNG), so a screen
or a receipt comes out the same on real hardware and in the simulator."""
