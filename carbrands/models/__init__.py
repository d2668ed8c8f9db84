"""The models: the custom CNN, pretrained backbones, their weights, and the transfer model."""
