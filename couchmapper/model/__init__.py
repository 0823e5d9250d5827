"""Model classes: registry (Meta parsed once), fields, bases, codecs and generated code.

Nothing is imported here, so importing one module of the package loads only what it needs.
"""
