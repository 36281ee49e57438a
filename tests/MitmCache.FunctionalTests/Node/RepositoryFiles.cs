namespace MitmCache.FunctionalTests.Node;

/// <summary>Files of this repository (scripts, units) found from the test binaries by walking up to MitmCache.sln.</summary>
internal static class RepositoryFiles
{
    private static readonly Lazy<string> s_root = new(FindRoot);

    public static string Combine(params string[] parts) => Path.Combine([s_root.Value, .. parts]);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "MitmCache.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"MitmCache.sln not found above {AppContext.BaseDirectory}");
    }
}
