using MitmCache.Certificates;
using MitmCache.Configuration;

namespace MitmCache.Cli;

/// <summary><c>mitmcache ca init|export</c>: the root CA in the data directory's <c>ca/</c>.</summary>
internal static class CaCommands
{
    public static int Init(CaInitVerb verb)
    {
        var layout = CommandLineApp.DataDirectory(verb.Data);
        var errors = new List<string>();
        DataDirectoryAccess.Check(layout, errors);
        if (errors.Count > 0)
        {
            errors.ForEach(e => Console.Error.WriteLine($"mitmcache: {e}"));
            return 1;
        }

        var ca = layout.Ca;
        if (!verb.Force && File.Exists(ca.Key))
        {
            Console.Error.WriteLine($"mitmcache: a CA already exists in {ca.Directory}; use --force to replace it (every node must then trust the new one)");
            return 1;
        }

        try
        {
            using var authority = CertificateAuthority.Create(verb.Permit.ToList(), TimeProvider.System);
            authority.Save(ca.Directory);
            Console.Error.WriteLine($"Created root CA in {ca.Directory}");
            Console.Error.WriteLine($"SHA-256 fingerprint: {authority.Sha256Fingerprint}");
            return 0;
        }
        catch (Exception ex) when (ex is ArgumentException or CertificateAuthorityException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"mitmcache: {ex.Message}");
            return 1;
        }
    }

    public static int Export(CaExportVerb verb)
    {
        try
        {
            using var authority = CertificateAuthority.Load(CommandLineApp.DataDirectory(verb.Data).Ca.Directory);
            Console.Out.Write(authority.ExportPem());
            return 0;
        }
        catch (CertificateAuthorityException ex)
        {
            Console.Error.WriteLine($"mitmcache: {ex.Message}");
            return 1;
        }
    }
}
