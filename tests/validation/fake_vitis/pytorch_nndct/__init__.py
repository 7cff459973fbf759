"""A fake of Vitis AI's vai_q_pytorch (``pytorch_nndct``) for tests."""
