"""car-brands: recognise car brands in photos. Library shared by the DVC stages and
the `carbrands` command. Entry points start TensorFlow through carbrands.startup."""
