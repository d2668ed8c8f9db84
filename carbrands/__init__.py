"""car-brands: recognise car brands in photos. Library shared by the DVC stages."""
