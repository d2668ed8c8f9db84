"""The data side: finding, auditing, decoding and preparing images, the synthetic dataset,
and the tf.data input pipeline with its augmentation."""
