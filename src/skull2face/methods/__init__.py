"""Every way to turn a skull into a face, behind one interface (see `registry`)."""
