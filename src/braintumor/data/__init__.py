"""Labelled image collections on disk: class folders, other sources and their boxes, the grouped
split, near-duplicate fingerprints and the audit. No PyTorch; imports only the shared modules at the
package root."""
