"""Guard training (torch side, `models` extra): frozen encoder + small head, trained on
labelled images and counterfactual pairs, calibrated, exported to one ONNX graph."""
