"""The ``braintumor`` sub-commands: one module each, with ``configure(parser)`` (its arguments) and
``run(args)`` (exit status). Modules import only light things at the top, so that ``--help`` is fast;
the work is imported inside ``run``."""

# name -> (module, one-line help), in the order ``braintumor --help`` lists them
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("braintumor.commands.train", "train a classifier on a folder of class sub-folders"),
    "evaluate": ("braintumor.commands.evaluate", "metrics of a model on a labelled folder, as served"),
    "audit": ("braintumor.commands.audit", "find duplicates, near-duplicates and label conflicts"),
    "predict": ("braintumor.commands.predict", "classify images, with Grad-CAM heat maps"),
    "serve": ("braintumor.commands.serve", "start the web app and JSON API"),
    "calibrate": ("braintumor.commands.calibrate", "fit temperature, referral and the OOD gate on a split"),
    "fit-gate": ("braintumor.commands.fit_gate", "fit the out-of-distribution gate on every source's validation slices"),
    "fit-boxes": ("braintumor.commands.fit_boxes", "refit a checkpoint's tumour-box head on its frozen features"),
    "fit-refiner": ("braintumor.commands.fit_refiner", "fit the refiner that corrects a checkpoint's tumour boxes"),
    "index": ("braintumor.commands.index", "embed a labelled folder into a similar-case index for a model"),
    "feedback": ("braintumor.commands.feedback", "list, summarise or export the corrections a server collected"),
    "finetune": ("braintumor.commands.finetune", "adapt a model to a site's labelled scans on this machine"),
    "export": ("braintumor.commands.export", "convert a checkpoint into the ONNX graphs the light install runs"),
    "study": ("braintumor.commands.study", "answer DICOM series and NIfTI volumes slice by slice, with DICOM SRs"),
    "pacs": ("braintumor.commands.pacs", "answer a study on a DICOMweb server and store the SRs back into it"),
}

# The commands that need PyTorch (the training install); the others run in the light install.
NEEDS_TRAINING: frozenset[str] = frozenset({"train", "calibrate", "fit-gate", "fit-boxes", "fit-refiner", "finetune", "export"})
