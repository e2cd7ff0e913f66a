"""Supply chain: who produced a model and an image, from what, and proof that nothing was swapped.

One key pair (``keys.py``) signs the three links: the model's files (OpenSSF model signing,
``model_signature.py``), the image's build provenance (an in-toto SLSA statement in a DSSE
envelope, ``provenance.py``) and the pushed image (``image_signature.py``).  The SBOM
(``sbom.py``) lists what the image installs; ``attestations.py`` keeps and ships these files
beside the image; ``chain.py`` checks every link and names the one that broke.
"""
