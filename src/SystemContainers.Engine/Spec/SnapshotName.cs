using System.Text.RegularExpressions;

namespace SystemContainers.Engine.Spec;

/// <summary>A snapshot's name: a directory name in every driver, so letters, digits, '-' and '_' only.</summary>
public static partial class SnapshotName
{
    public const string Rule = "use 1 to 63 letters, digits, '-' and '_', starting with a letter or digit";

    [GeneratedRegex("^[A-Za-z0-9]([A-Za-z0-9_-]{0,62})\\z")]
    private static partial Regex NamePattern();

    public static bool IsValid(string name) => NamePattern().IsMatch(name);

    public static string Validate(string name) => IsValid(name) ? name
        : throw EngineException.Invalid("InvalidSnapshotName", $"snapshot name '{DisplayText.Escape(name)}' is invalid: {Rule}");
}
