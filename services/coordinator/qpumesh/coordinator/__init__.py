"""The coordinator service: the (distributed) QLSTM trained through a mesh of QPU nodes."""
