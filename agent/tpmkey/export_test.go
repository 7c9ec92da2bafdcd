package tpmkey

import "github.com/google/go-tpm/tpm2"

// Handle returns the key's handle and name in the TPM.
func Handle(k *Key) (tpm2.TPMHandle, tpm2.TPM2BName) { return k.handle, k.name }
