using System.Security.Cryptography.X509Certificates;

namespace MitmCache.Core.Tests.Certificates;

internal static class CertificateTestHelpers
{
    public const string ServerAuthOid = "1.3.6.1.5.5.7.3.1";

    /// <summary>Builds the chain of <paramref name="leaf"/> trusting only <paramref name="root"/>, as a client that imported the root would.</summary>
    public static (bool Valid, X509ChainStatusFlags Status) Validate(X509Certificate2 leaf, X509Certificate2 root, DateTimeOffset? at = null)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(root);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.DisableCertificateDownloads = true;
        chain.ChainPolicy.ApplicationPolicy.Add(new System.Security.Cryptography.Oid(ServerAuthOid));
        if (at is { } time)
        {
            chain.ChainPolicy.VerificationTime = time.UtcDateTime;
        }

        var valid = chain.Build(leaf);
        var status = chain.ChainStatus.Aggregate(X509ChainStatusFlags.NoError, (flags, s) => flags | s.Status);
        return (valid, status);
    }
}
