"""car-brands: recognise car brands in photos. Library shared by the DVC stages."""
import os

# TensorFlow's C++ start-up chatter (oneDNN notices) hides the stages' own output
# in logs; set before any module imports TensorFlow.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
