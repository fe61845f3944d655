"""Teachers: the OpenAI-compatible client and its cache, the local llama.cpp server, the shipped
distillation set, and the label-to-span conversion of the teacher's answers. Depends on core only."""
