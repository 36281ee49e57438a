namespace MitmCache.Certificates;

/// <summary>
/// The root CA on disk cannot be used: a file is missing, unreadable, corrupt, too permissive, or
/// the certificate and key do not belong together. The message says which file and how to fix it.
/// </summary>
internal sealed class CertificateAuthorityException : Exception
{
    public CertificateAuthorityException(string message)
        : base(message)
    {
    }

    public CertificateAuthorityException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
