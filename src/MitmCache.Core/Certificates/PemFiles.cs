using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace MitmCache.Certificates;

/// <summary>
/// Reads the CA's PEM files, turning every way they can be wrong into a
/// <see cref="CertificateAuthorityException"/> that names the file.
/// </summary>
internal static class PemFiles
{
    public static X509Certificate2 ReadCertificate(string path)
    {
        var pem = ReadText(path);
        try
        {
            return X509Certificate2.CreateFromPem(pem);
        }
        catch (CryptographicException e)
        {
            throw new CertificateAuthorityException(
                $"The CA certificate '{path}' is not a valid PEM certificate (expected a -----BEGIN CERTIFICATE----- block): {e.Message}", e);
        }
    }

    public static ECDsa ReadEcdsaPrivateKey(string path)
    {
        var pem = ReadText(path);
        var key = ECDsa.Create();
        try
        {
            // ImportFromPem also takes a PUBLIC KEY block, which would sign nothing.
            if (!ContainsPrivateKey(pem))
            {
                throw new CryptographicException("no PRIVATE KEY or EC PRIVATE KEY block found");
            }

            key.ImportFromPem(pem);
            return key;
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            key.Dispose();
            throw new CertificateAuthorityException(
                $"The CA private key '{path}' is not a valid ECDSA private key in PEM (expected -----BEGIN PRIVATE KEY----- or -----BEGIN EC PRIVATE KEY-----): {e.Message}", e);
        }
    }

    private static bool ContainsPrivateKey(ReadOnlySpan<char> pem)
    {
        while (PemEncoding.TryFind(pem, out var fields))
        {
            var label = pem[fields.Label];
            if (label.SequenceEqual("PRIVATE KEY") || label.SequenceEqual("EC PRIVATE KEY"))
            {
                return true;
            }

            pem = pem[fields.Location.End..];
        }

        return false;
    }

    private static string ReadText(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CertificateAuthorityException($"Cannot read CA file '{path}': {e.Message}", e);
        }
    }
}
